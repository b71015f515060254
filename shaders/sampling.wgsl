// Next-token selection on the GPU: one workgroup of 256 invocations per row of logits[rows, V]; the result
// is one u32 token id per row (4 bytes to read back instead of the logits).
//   argmax: the index of the largest (repetition-penalised) logit; ties → lowest index; NaN logits are
//           skipped; a row of NaN only gives NONE (0xFFFFFFFF). STRICT (flag 16, what decoding uses): any NaN or
//           +∞ in the row gives NONE — a broken forward pass is reported, not read as a token.
//   sample: HF's sampling chain on one uniform number u ∈ [0, 1) from the caller:
//           repetition penalty → / temperature → top-k → top-p → inverse CDF over the kept tokens in
//           descending-probability order (ties → lower index).
// Repetition penalty (HF RepetitionPenaltyLogitsProcessor): the logit of every token marked in the row's
// `seen` bitmask (bit v & 31 of word v >> 5) becomes logit / penalty if ≥ 0, else logit · penalty.
// MARK: the chosen token's bit is set afterwards, so decoding keeps the mask current without the host.
//
// Values are compared through an order-preserving u32 key (NaN → 0, excluded; −0 → +0), so ties and
// ordering are exact integer comparisons. Top-k selection is an exact radix select over the keys (4 passes
// of 8-bit histograms in workgroup memory), giving the K = min(top_k, 256) best tokens by (value, −index);
// they are then bitonic-sorted and the tail (top-p, CDF, ≤ 256 steps) runs on one invocation.
// Approximations (documented in src/kernels/sampling.ts): K ≤ 256 candidates; at the k-th value, ties beyond
// K are dropped by index (HF keeps them all); with top-k off the nucleus is still drawn from the 256 best,
// with probabilities normalised over the whole vocabulary.
#include "workgroup_reduce.wgsl"

struct Params {
  rows: u32,
  V: u32,
  words: u32,         // seen-mask words per row: ⌈V/32⌉
  flags: u32,         // 1: penalty, 2: mark the chosen token, 4: top-k active, 8: top-p active
  penalty: f32,
  temperature: f32,
  k: u32,             // candidates: min(top_k, 256), or 256 with top-k off
  top_p: f32,
  u: array<vec4<f32>, 4>, // one uniform number per row (rows ≤ 16)
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> seen: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 256u;
const NONE = 0xFFFFFFFFu;
const F_PENALTY = 1u;
const F_MARK = 2u;
const F_TOPK = 4u;
const F_TOPP = 8u;
const F_STRICT = 16u;
// Above every number's key (+∞ is 0xFF800000): marks a non-finite logit in STRICT argmax.
const K_NONFINITE = 0xFFFFFFFFu;

// Order-preserving map f32 → u32 (larger value ↔ larger key). NaN → 0, which no number maps to.
fn order_key(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) { return 0u; }
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7FFFFFFFu, (k & 0x80000000u) != 0u));
}

// The processed logit: repetition penalty, then (sample only) the temperature.
fn score(row: u32, v: u32, temperature: bool) -> f32 {
  var s = logits[row * p.V + v];
  if ((p.flags & F_PENALTY) != 0u) {
    let bit = (seen[row * p.words + (v >> 5u)] >> (v & 31u)) & 1u;
    if (bit != 0u) { s = select(s / p.penalty, s * p.penalty, s < 0.0); }
  }
  if (temperature) { s = s / p.temperature; }
  return s;
}

fn finish(row: u32, tok: u32) {
  out[row] = tok;
  if ((p.flags & F_MARK) != 0u && tok < p.V) {
    let w = row * p.words + (tok >> 5u);
    seen[w] = seen[w] | (1u << (tok & 31u));
  }
}

// (ka, ia) ranks before (kb, ib): larger key, then lower index.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}

var<workgroup> red_k: array<u32, WG>;
var<workgroup> red_i: array<u32, WG>;

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; } // uniform: the whole workgroup leaves
  var bk = 0u;
  var bi = NONE;
  for (var v = li; v < p.V; v += WG) {
    let s = score(row, v, false);
    var k = order_key(s);
    // NaN or +∞ by their bits (a compiler may fold s != s away); −∞ (0xFF800000) is an ordinary, masked logit.
    let b = bitcast<u32>(s);
    if ((p.flags & F_STRICT) != 0u && (b & 0x7FFFFFFFu) >= 0x7F800000u && b != 0xFF800000u) { k = K_NONFINITE; }
    if (k > bk) { bk = k; bi = v; } // strictly greater: this invocation sees its indices in increasing order
  }
  red_k[li] = bk;
  red_i[li] = bi;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride && before(red_k[li + stride], red_i[li + stride], red_k[li], red_i[li])) {
      red_k[li] = red_k[li + stride];
      red_i[li] = red_i[li + stride];
    }
    workgroupBarrier();
  }
  if (li == 0u) { finish(row, select(red_i[0], NONE, red_k[0] == K_NONFINITE)); }
}

// ---- sample ----

var<workgroup> hist: array<atomic<u32>, WG>;
var<workgroup> slot: atomic<u32>;
var<workgroup> s_prefix: u32;   // key bits fixed so far → the k-th largest key T after 4 passes
var<workgroup> s_need: u32;     // elements still to take among those matching the prefix; then: ties (key == T) to take
var<workgroup> s_total: u32;    // non-NaN elements in the row
var<workgroup> s_eq: u32;       // elements with key == T
var<workgroup> s_max: f32;      // the best score (for the full-vocabulary normaliser)
var<workgroup> tie_base: array<u32, WG>; // tie path: per-invocation rank offsets

@compute @workgroup_size(WG)
fn sample(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let li = lane.li;
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  if (li == 0u) {
    s_prefix = 0u;
    s_need = p.k;
    atomicStore(&slot, 0u);
  }
  // 1. Radix select of the k-th largest key, 8 bits per pass from the top.
  for (var rp = 0u; rp < 4u; rp++) {
    let shift = 24u - 8u * rp;
    let mask = select(0xFFFFFFFFu << (32u - 8u * rp), 0u, rp == 0u);
    workgroupBarrier(); // invocation 0 has finished reading the previous pass's histogram
    atomicStore(&hist[li], 0u);
    let prefix = workgroupUniformLoad(&s_prefix); // also the barrier that orders the clear above
    for (var v = li; v < p.V; v += WG) {
      let k = order_key(score(row, v, true));
      if (k != 0u && (k & mask) == prefix) { atomicAdd(&hist[(k >> shift) & 0xFFu], 1u); }
    }
    workgroupBarrier();
    if (li == 0u) {
      var need = s_need;
      if (rp == 0u) {
        var total = 0u;
        for (var b = 0u; b < WG; b++) { total += atomicLoad(&hist[b]); }
        s_total = total;
        need = min(need, total);
      }
      if (need > 0u) {
        var cum = 0u;
        var b = 255u;
        loop {
          let c = atomicLoad(&hist[b]);
          if (cum + c >= need || b == 0u) {
            s_eq = c;
            break;
          }
          cum += c;
          b -= 1u;
        }
        need -= cum; // elements in higher bins are all taken (they are > T)
        s_prefix = prefix | (b << shift);
      }
      s_need = need;
    }
  }
  let total = workgroupUniformLoad(&s_total);
  if (total == 0u) { // every logit is NaN
    if (li == 0u) { finish(row, NONE); }
    return;
  }
  let T = workgroupUniformLoad(&s_prefix);
  let need_eq = workgroupUniformLoad(&s_need);
  let take_all_ties = workgroupUniformLoad(&s_eq) == need_eq;

  // 2. Gather the candidates: every key > T, and the ties (key == T) — all of them, or the lowest
  //    need_eq indices (rare: exact ties at the k-th value), found with a ranked pass over contiguous chunks.
  for (var v = li; v < p.V; v += WG) {
    let k = order_key(score(row, v, true));
    if (k > T || (k == T && take_all_ties)) {
      let s = atomicAdd(&slot, 1u);
      red_k[s] = k;
      red_i[s] = v;
    }
  }
  if (!take_all_ties) {
    let chunk = (p.V + WG - 1u) / WG;
    let lo = li * chunk;
    let hi = min(lo + chunk, p.V);
    var c = 0u;
    for (var v = lo; v < hi; v++) {
      if (order_key(score(row, v, true)) == T) { c++; }
    }
    tie_base[li] = c;
    workgroupBarrier();
    if (li == 0u) { // exclusive prefix sum, serial: 256 steps
      var acc = 0u;
      for (var i = 0u; i < WG; i++) {
        let t = tie_base[i];
        tie_base[i] = acc;
        acc += t;
      }
    }
    workgroupBarrier();
    var rank = tie_base[li];
    for (var v = lo; v < hi; v++) {
      if (rank >= need_eq) { break; }
      if (order_key(score(row, v, true)) == T) {
        let s = atomicAdd(&slot, 1u);
        red_k[s] = T;
        red_i[s] = v;
        rank++;
      }
    }
  }
  workgroupBarrier();
  let n = atomicLoad(&slot); // = min(k, total) ≤ 256
  if (li >= n) {
    red_k[li] = 0u;
    red_i[li] = NONE;
  }

  // 3. Bitonic sort of the 256 slots: best first.
  for (var size = 2u; size <= WG; size <<= 1u) {
    for (var j = size >> 1u; j > 0u; j >>= 1u) {
      workgroupBarrier();
      let partner = li ^ j;
      if (partner > li) {
        let ka = red_k[li];
        let ia = red_i[li];
        let kb = red_k[partner];
        let ib = red_i[partner];
        let forward = (li & size) == 0u;
        if (select(before(ka, ia, kb, ib), before(kb, ib, ka, ia), forward)) {
          red_k[li] = kb;
          red_i[li] = ib;
          red_k[partner] = ka;
          red_i[partner] = ia;
        }
      }
    }
  }
  workgroupBarrier();

  // 4. Normaliser: over the candidates with top-k on (HF's top-p sees the top-k-filtered softmax),
  //    else over the whole vocabulary.
  let smax = key_value(red_k[0]);
  var part = 0.0;
  if ((p.flags & F_TOPK) == 0u) {
    for (var v = li; v < p.V; v += WG) {
      let k = order_key(score(row, v, true));
      if (k != 0u) { part += exp(key_value(k) - smax); }
    }
  } else if (li < n) {
    part = exp(key_value(red_k[li]) - smax);
  }
  let z = wg_sum(part, lane);

  // 5. Top-p and the inverse CDF, serially over ≤ 256 sorted candidates.
  if (li == 0u) {
    // Keep candidate j while the probability mass before it is < top_p (HF keeps the token whose
    // ascending cumulative mass exceeds 1 − top_p); the first is always kept.
    var kept = 1u;
    var mass = 1.0; // exp(smax − smax)
    var before_mass = mass / z;
    for (var j = 1u; j < n; j++) {
      if ((p.flags & F_TOPP) != 0u && before_mass >= p.top_p) { break; }
      mass += exp(key_value(red_k[j]) - smax);
      before_mass = mass / z;
      kept++;
    }
    let goal = p.u[row / 4u][row % 4u] * mass;
    var pick = kept - 1u;
    var c = 0.0;
    for (var j = 0u; j < kept; j++) {
      c += exp(key_value(red_k[j]) - smax);
      if (c > goal) {
        pick = j;
        break;
      }
    }
    finish(row, red_i[pick]);
  }
}
