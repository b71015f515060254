// Merges flash-decoding partials (shaders/attention_decode.wgsl): for one (token, head) record,
// O = Σ_s 2^(m_s − M)·O_s / Σ_s 2^(m_s − M)·l_s with M = max_s m_s (log2-domain maxima).
// A split whose keys were all masked has l_s = 0 and m_s = NEG, so it weighs nothing.

struct Params {
  n_splits: u32,
  nrec: u32,       // nq · heads
  heads: u32,
  o_row: u32,      // vec4 stride between output tokens
}

@group(0) @binding(0) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

override HD4: u32 = 16u;

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rec = wid.x;
  let mlbase = p.n_splits * p.nrec * HD4;
  var mx = -1.0e30;
  for (var s = 0u; s < p.n_splits; s++) { mx = max(mx, part[mlbase + s * p.nrec + rec].x); }
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var s = 0u; s < p.n_splits; s++) {
    let mls = part[mlbase + s * p.nrec + rec];
    let w = exp2(mls.x - mx);
    l += w * mls.y;
    if (li < HD4) { acc += w * part[(s * p.nrec + rec) * HD4 + li]; }
  }
  if (li < HD4) {
    let t = rec / p.heads;
    let h = rec % p.heads;
    o[t * p.o_row + h * HD4 + li] = acc * select(0.0, 1.0 / l, l > 0.0);
  }
}
