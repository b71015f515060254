// Online softmax pieces shared by attention_prefill.wgsl and attention_decode.wgsl. Scores live in the log2
// domain (Q pre-multiplied by scale·log2(e), exp2 used); masked scores are NEG, a finite sentinel (WGSL gives
// no portable infinity): a probability is taken only for scores above NEG_HALF.
// softmax_step is the row-per-invocation form (the 'rows' variants): the including shader declares `HD4`
// (head_dim / 4, ≤ HD4_MAX), and the running output is an array<vec4<f32>, HD4_MAX> in private registers.

const NEG: f32 = -1.0e30;
const NEG_HALF: f32 = -5.0e29;
const HD4_MAX: u32 = 32u;

// One key of the row-per-invocation online softmax: when score s raises the running max m, the sum l and the
// output acc are rescaled (only then); returns the key's weight 2^(s − m).
fn softmax_step(s: f32, m: ptr<function, f32>, l: ptr<function, f32>, acc: ptr<function, array<vec4<f32>, HD4_MAX>>) -> f32 {
  if (s > *m) {
    let alpha = exp2(*m - s);
    *l *= alpha;
    for (var d = 0u; d < HD4; d++) { (*acc)[d] *= alpha; }
    *m = s;
  }
  let pj = exp2(s - *m);
  *l += pj;
  return pj;
}
