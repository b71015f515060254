// Flash-decoding: attention of a few new query tokens (≤ 4) over the KV cache, split over the keys.
// Binding: src/kernels/attention_decode.ts. Merge of the splits: shaders/attention_merge.wgsl.
//
// Workgroup (split, KV head, head tile) takes keys [split·chunk, +chunk) of one KV head for all NQV query
// vectors that use it (nq tokens × the group's query heads: GQA packing, so each K/V row is read once):
//   A. scores: K tiles of BK keys are loaded coalesced into workgroup memory; one invocation per
//      (vector, key) dot product; all the chunk's scores stay in workgroup memory;
//   B. per vector: max and Σexp over the chunk (TPV invocations per vector);
//   C. P·V: invocation (key lane, d) reads V rows straight from memory (coalesced along d) and keeps
//      NQV vec4 accumulators (in ≤ 4 mat4x4s); the key lanes are summed through workgroup memory.
// One split writes the normalised output (direct); several write (O unnormalised, max, sum) partials.
// Entry point main_rows is the variant for CPU adapters (see there).
// Scores are in the log2 domain (Q pre-scaled by scale·log2 e); NEG marks masked scores.
#include "online_softmax.wgsl"
#include "mat4.wgsl"

struct Params {
  kv_len: u32,         // keys 0..kv_len-1, the new tokens' own keys included
  nq: u32,             // new tokens; token t sits at absolute position kv_len - nq + t
  group: u32,          // query heads per KV head
  heads_per_tile: u32,
  g_tiles: u32,
  heads: u32,
  chunk: u32,          // keys per split, a multiple of BK, ≤ SMAX
  n_splits: u32,
  q_row: u32,          // vec4 strides and offsets
  q_off: u32,
  k_row: u32,
  k_head: u32,
  k_off: u32,
  v_off: u32,
  o_row: u32,
  direct: u32,
  scale_log2: f32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
// Partials: O [n_splits][nq·heads][HD4] vec4, then (max, sum, -, -) [n_splits][nq·heads].
@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 128u;
override HD4: u32 = 16u;
override NQV: u32 = 3u;            // query vectors per workgroup (≤ 16)
override BK: u32 = 32u;            // keys per K tile
override SMAX: u32 = 512u;         // largest chunk (scores kept per vector)
override TPV: u32 = 32u;           // invocations per vector in phase B: TPV·NQV ≤ WG
override QS: u32 = HD4 + 1u;       // padded K-tile row stride: conflict-free row reads
override KL: u32 = WG / HD4;       // key lanes in phase C
override Q_SIZE: u32 = NQV * HD4;
override K_SIZE: u32 = BK * QS;
override S_SIZE: u32 = NQV * SMAX;

var<workgroup> qs: array<vec4<f32>, Q_SIZE>;
var<workgroup> ks: array<vec4<f32>, K_SIZE>;
var<workgroup> ss: array<f32, S_SIZE>;
var<workgroup> red: array<f32, WG>;
var<workgroup> red4: array<vec4<f32>, 2u * WG>;
var<workgroup> ml: array<vec2<f32>, NQV>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let split = wid.x;
  let kvh = wid.y / p.g_tiles;
  let gt = wid.y % p.g_tiles;
  let h0 = kvh * p.group + gt * p.heads_per_tile;
  let nh = min(p.heads_per_tile, p.group - gt * p.heads_per_tile);
  let nv = p.nq * nh;                  // vector vi = token (vi / nh), head h0 + vi % nh
  let c0 = split * p.chunk;
  let n = min(p.chunk, p.kv_len - c0);
  let past = p.kv_len - p.nq;

  for (var i = li; i < NQV * HD4; i += WG) {
    let vi = i / HD4;
    let d = i % HD4;
    var val = vec4<f32>(0.0);
    if (vi < nv) { val = q[p.q_off + (vi / nh) * p.q_row + (h0 + vi % nh) * HD4 + d] * p.scale_log2; }
    qs[vi * HD4 + d] = val;
  }

  // A. scores of the whole chunk
  let kbase = p.k_off + kvh * p.k_head + c0 * p.k_row;
  for (var j0 = 0u; j0 < n; j0 += BK) {
    workgroupBarrier(); // qs is complete; the previous tile's scores are done with ks
    for (var i = li; i < BK * HD4; i += WG) {
      let j = i / HD4;
      let d = i % HD4;
      var val = vec4<f32>(0.0);
      if (j0 + j < n) { val = k[kbase + (j0 + j) * p.k_row + d]; }
      ks[j * QS + d] = val;
    }
    workgroupBarrier();
    for (var i = li; i < NQV * BK; i += WG) {
      let vi = i / BK;
      let j = i % BK;
      var sc = 0.0;
      for (var d = 0u; d < HD4; d++) { sc += dot(qs[vi * HD4 + d], ks[j * QS + d]); }
      let visible = vi < nv && j0 + j < n && c0 + j0 + j <= past + vi / nh;
      ss[vi * SMAX + j0 + j] = select(NEG, sc, visible);
    }
  }
  workgroupBarrier();

  // B. max and sum per vector: TPV invocations each take every TPV-th key, then each of them sums the
  // TPV partials itself (one barrier per reduction instead of log2(TPV)).
  let bv = li / TPV;
  let lane = li % TPV;
  let rbase = bv * TPV;
  var lmax = NEG;
  if (bv < NQV) {
    for (var j = lane; j < n; j += TPV) { lmax = max(lmax, ss[bv * SMAX + j]); }
  }
  red[li] = lmax;
  workgroupBarrier();
  var mv = NEG;
  for (var l = 0u; l < TPV; l++) { mv = max(mv, red[rbase + l]); }
  workgroupBarrier();
  var lsum = 0.0;
  if (bv < NQV) {
    for (var j = lane; j < n; j += TPV) {
      let sv = ss[bv * SMAX + j];
      let pj = select(0.0, exp2(sv - mv), sv > NEG_HALF);
      ss[bv * SMAX + j] = pj;
      lsum += pj;
    }
  }
  red[li] = lsum;
  workgroupBarrier();
  if (lane == 0u && bv < NQV) {
    var l_all = 0.0;
    for (var l = 0u; l < TPV; l++) { l_all += red[rbase + l]; }
    ml[bv] = vec2<f32>(mv, l_all);
  }
  workgroupBarrier();

  // C. P·V. acc_g holds vectors 4g..4g+3 (matrix columns) of this invocation's vec4 column d: vectors and
  // mat4x4s with constant indices, not an array indexed by a loop counter (CPU adapters do not unroll).
  let d = li % HD4;
  let kl = li / HD4;
  var acc0 = mat4x4<f32>();
  var acc1 = mat4x4<f32>();
  var acc2 = mat4x4<f32>();
  var acc3 = mat4x4<f32>();
  if (kl < KL) {
    let vbase = p.v_off + kvh * p.k_head + c0 * p.k_row + d;
    for (var j = kl; j < n; j += KL) {
      let vv = v[vbase + j * p.k_row];
      acc0 += outer(vv, probs(0u, j));
      if (NQV > 4u) { acc1 += outer(vv, probs(4u, j)); }
      if (NQV > 8u) { acc2 += outer(vv, probs(8u, j)); }
      if (NQV > 12u) { acc3 += outer(vv, probs(12u, j)); }
    }
  }
  let nrec = p.nq * p.heads;
  for (var vi = 0u; vi < NQV; vi++) {
    let g = vi / 4u;
    var m = acc0;
    if (g == 1u) { m = acc1; } else if (g == 2u) { m = acc2; } else if (g == 3u) { m = acc3; }
    // Two halves used alternately: one barrier per vector (round vi + 2 reuses a half only after
    // round vi + 1's barrier, by which time round vi's reads are done).
    let half = (vi % 2u) * WG;
    red4[half + li] = m[vi % 4u];
    workgroupBarrier();
    if (li < HD4 && vi < nv) {
      var sum = red4[half + li];
      for (var l = 1u; l < KL; l++) { sum += red4[half + l * HD4 + li]; }
      let t = vi / nh;
      let h = h0 + vi % nh;
      let mlv = ml[vi];
      if (p.direct != 0u) {
        o[t * p.o_row + h * HD4 + li] = sum * select(0.0, 1.0 / mlv.y, mlv.y > 0.0);
      } else {
        let rec = t * p.heads + h;
        part[(split * nrec + rec) * HD4 + li] = sum;
        if (li == 0u) { part[p.n_splits * nrec * HD4 + split * nrec + rec] = vec4<f32>(mlv.x, mlv.y, 0.0, 0.0); }
      }
    }
  }
}

/** Probabilities of key j for vectors v0..v0+3 (0 past NQV; indices clamped so nothing reads out of bounds). */
fn probs(v0: u32, j: u32) -> vec4<f32> {
  let last = NQV - 1u;
  return vec4<f32>(
    select(0.0, ss[min(v0, last) * SMAX + j], v0 < NQV),
    select(0.0, ss[min(v0 + 1u, last) * SMAX + j], v0 + 1u < NQV),
    select(0.0, ss[min(v0 + 2u, last) * SMAX + j], v0 + 2u < NQV),
    select(0.0, ss[min(v0 + 3u, last) * SMAX + j], v0 + 3u < NQV));
}

// ---- Variant 'rows' (CPU adapters) ----
// SwiftShader pays ~1 µs per f32 of workgroup memory per workgroup and tens of µs per barrier
// (measured), which dominate the tiled kernel there. Here one invocation per (query vector, split)
// runs the online softmax over its keys with q and the output in private memory; no workgroup memory,
// no barriers. Invocations of one token are adjacent, so heads sharing a KV row read it from cache.

@compute @workgroup_size(16)
fn main_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let nrec = p.nq * p.heads;
  let rec = gid.x;
  if (rec >= nrec) { return; }
  let split = gid.y;
  let t = rec / p.heads;
  let h = rec % p.heads;
  let kvh = h / p.group;
  let c0 = split * p.chunk;
  let n = min(p.chunk, p.kv_len - c0);
  // Keys c0..c0+nvis-1 are visible to token t (at position kv_len - nq + t).
  let last = p.kv_len - p.nq + t;
  let nvis = select(min(n, last + 1u - c0), 0u, last < c0);
  var qv: array<vec4<f32>, HD4_MAX>;
  var acc: array<vec4<f32>, HD4_MAX>;
  let qb = p.q_off + t * p.q_row + h * HD4;
  for (var d = 0u; d < HD4; d++) {
    qv[d] = q[qb + d] * p.scale_log2;
    acc[d] = vec4<f32>(0.0);
  }
  let kb = p.k_off + kvh * p.k_head + c0 * p.k_row;
  let vb = p.v_off + kvh * p.k_head + c0 * p.k_row;
  var m = NEG;
  var l = 0.0;
  for (var j = 0u; j < nvis; j++) {
    var s = 0.0;
    for (var d = 0u; d < HD4; d++) { s += dot(qv[d], k[kb + j * p.k_row + d]); }
    let pj = softmax_step(s, &m, &l, &acc);
    for (var d = 0u; d < HD4; d++) { acc[d] = fma(vec4<f32>(pj), v[vb + j * p.k_row + d], acc[d]); }
  }
  if (p.direct != 0u) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < HD4; d++) { o[t * p.o_row + h * HD4 + d] = acc[d] * inv; }
  } else {
    for (var d = 0u; d < HD4; d++) { part[(split * nrec + rec) * HD4 + d] = acc[d]; }
    part[p.n_splits * nrec * HD4 + split * nrec + rec] = vec4<f32>(m, l, 0.0, 0.0);
  }
}
