// Flash attention for prefill: O = softmax(Q·Kᵀ·scale + mask) · V, one pass over K/V with an online
// softmax, f32 throughout. Binding: src/kernels/attention_prefill.ts (layouts are documented there).
//
// A workgroup owns M = RG·4 query vectors that share one KV head (GQA packing): vector m is query row
// r0 + m / nh of query head h0 + m % nh, so a K/V tile loaded into workgroup memory serves all the
// query heads of its group at once. Per tile of BK keys:
//   1. S = Q·Kᵀ  — thread (rg, cg) computes 4 query vectors × keys cg, cg + 8 from workgroup memory;
//   2. online softmax of each row (thread m < M owns row m's running max and sum) while all threads
//      load the V tile into the same workgroup buffer K used;
//   3. O += P·V  — thread (rg, cg) owns 4 rows × NC vec4 columns of the output in registers.
// Per-invocation tiles are vectors and mat4x4s indexed by constants, never arrays indexed by loop
// counters: CPU adapters (SwiftShader) do not unroll loops and would keep such arrays in memory.
// Scores live in the log2 domain: Q is pre-multiplied by scale·log2(e) and exp2 is used.
// Masked scores (causal, keys ≥ kv_len) are NEG, a finite sentinel (shaders/common/online_softmax.wgsl).
#include "online_softmax.wgsl"
#include "mat4.wgsl"

struct Params {
  seq: u32,            // query rows per batch item
  kv_len: u32,         // keys 0..kv_len-1 are visible (key padding beyond)
  past: u32,           // absolute position of query row 0 (causal mode)
  causal: u32,
  group: u32,          // query heads per KV head
  heads_per_tile: u32, // query heads packed in one workgroup
  rows_per_tile: u32,
  g_tiles: u32,        // workgroups along one KV head's query heads
  q_row: u32,          // vec4 strides and offsets
  q_batch: u32,
  q_off: u32,
  o_row: u32,
  o_batch: u32,
  k_row: u32,
  k_head: u32,
  k_batch: u32,
  k_off: u32,
  v_off: u32,
  heads: u32,          // query heads (main_rows)
  scale_log2: f32,     // head_dim^-0.5 · log2(e)
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

override HD4: u32 = 16u;           // head_dim / 4
override RG: u32 = 16u;            // row groups of 4 query vectors
const BK: u32 = 16u;               // keys per tile: each invocation scores keys cg and cg + 8
override WG: u32 = RG * 8u;        // invocations: RG row groups × 8 column groups
override M: u32 = RG * 4u;         // query vectors per workgroup
override QS: u32 = HD4 + 1u;       // padded row stride (vec4) of Q/K/V tiles: no bank conflicts
override SS: u32 = BK + 1u;        // padded row stride of the score tile
override NC: u32 = (HD4 + 7u) / 8u; // vec4 output columns per invocation in phase 3 (≤ 4)
// Q read straight from memory instead of a workgroup tile: for CPU adapters, where workgroup memory
// costs ~1 µs per f32 per workgroup (SwiftShader, measured) and "global" memory is the CPU's cache anyway.
override Q_GLOBAL: bool = false;
override Q_SIZE: u32 = select(M * QS, 1u, Q_GLOBAL);
override KV_SIZE: u32 = BK * QS;
override S_SIZE: u32 = M * SS;

var<workgroup> qs: array<vec4<f32>, Q_SIZE>;
var<workgroup> kvs: array<vec4<f32>, KV_SIZE>;
var<workgroup> ss: array<f32, S_SIZE>;
var<workgroup> rowv: array<f32, M>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let kvh = wid.y / p.g_tiles;
  let gt = wid.y % p.g_tiles;
  let h0 = kvh * p.group + gt * p.heads_per_tile;
  let nh = min(p.heads_per_tile, p.group - gt * p.heads_per_tile);
  let r0 = wid.x * p.rows_per_tile;
  let rows = min(p.rows_per_tile, p.seq - r0);
  let nv = rows * nh;
  let rg = li / 8u;
  let cg = li % 8u;

  // Q tile, pre-scaled. Consecutive vectors are consecutive heads of one row: contiguous in memory.
  let qbase = p.q_off + b * p.q_batch + r0 * p.q_row + h0 * HD4;
  if (!Q_GLOBAL) {
    for (var i = li; i < M * HD4; i += WG) {
      let m = i / HD4;
      let d = i % HD4;
      var val = vec4<f32>(0.0);
      if (m < nv) {
        val = q[qbase + (m / nh) * p.q_row + (m % nh) * HD4 + d] * p.scale_log2;
      }
      qs[m * QS + d] = val;
    }
  }

  var k_end = p.kv_len;
  if (p.causal != 0u) { k_end = min(k_end, p.past + r0 + rows); }
  let kbase = p.k_off + b * p.k_batch + kvh * p.k_head;
  let vbase = p.v_off + b * p.k_batch + kvh * p.k_head;

  // Absolute positions of this invocation's 4 query rows (causal mask).
  let m0 = rg * 4u;
  let qpos = vec4<u32>(p.past + r0) + vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u) / vec4<u32>(nh);
  let causal = p.causal != 0u;
  // Q_GLOBAL: where this invocation's 4 query vectors start (clamped to vector 0 past nv; masked below).
  let mq = min(vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u), vec4<u32>(max(nv, 1u) - 1u));
  let qoff = vec4<u32>(qbase) + (mq / vec4<u32>(nh)) * p.q_row + (mq % vec4<u32>(nh)) * HD4;
  let qscale = select(vec4<f32>(0.0), vec4<f32>(p.scale_log2), vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u) < vec4<u32>(nv));

  // Output tile: acc_n holds vec4 column cg + 8n of rows m0..m0+3 (matrix column i = row m0 + i).
  var acc0 = mat4x4<f32>();
  var acc1 = mat4x4<f32>();
  var acc2 = mat4x4<f32>();
  var acc3 = mat4x4<f32>();
  var m_run = NEG;
  var l_run = 0.0;
  for (var k0 = 0u; k0 < k_end; k0 += BK) {
    workgroupBarrier(); // the previous tile's P·V (or the Q load) is done with kvs / qs
    for (var i = li; i < BK * HD4; i += WG) {
      let j = i / HD4;
      let d = i % HD4;
      var val = vec4<f32>(0.0);
      if (k0 + j < k_end) { val = k[kbase + (k0 + j) * p.k_row + d]; }
      kvs[j * QS + d] = val;
    }
    workgroupBarrier();

    // 1. scores of rows m0..m0+3 (vector components) against keys cg (sa) and cg + 8 (sb)
    var sa = vec4<f32>(0.0);
    var sb = vec4<f32>(0.0);
    for (var d = 0u; d < HD4; d++) {
      // k · Q4 = (q0·k, q1·k, q2·k, q3·k) with Q4's columns the 4 query vectors.
      var q4: mat4x4<f32>;
      if (Q_GLOBAL) {
        q4 = mat4x4<f32>(q[qoff.x + d] * qscale.x, q[qoff.y + d] * qscale.y, q[qoff.z + d] * qscale.z, q[qoff.w + d] * qscale.w);
      } else {
        q4 = mat4x4<f32>(qs[m0 * QS + d], qs[(m0 + 1u) * QS + d], qs[(m0 + 2u) * QS + d], qs[(m0 + 3u) * QS + d]);
      }
      sa += kvs[cg * QS + d] * q4;
      sb += kvs[(cg + 8u) * QS + d] * q4;
    }
    let ja = k0 + cg;
    let jb = ja + 8u;
    let va = vec4<bool>(ja < k_end) & (vec4<bool>(!causal) | (vec4<u32>(ja) <= qpos));
    let vb = vec4<bool>(jb < k_end) & (vec4<bool>(!causal) | (vec4<u32>(jb) <= qpos));
    sa = select(vec4<f32>(NEG), sa, va);
    sb = select(vec4<f32>(NEG), sb, vb);
    ss[m0 * SS + cg] = sa.x;
    ss[(m0 + 1u) * SS + cg] = sa.y;
    ss[(m0 + 2u) * SS + cg] = sa.z;
    ss[(m0 + 3u) * SS + cg] = sa.w;
    ss[m0 * SS + cg + 8u] = sb.x;
    ss[(m0 + 1u) * SS + cg + 8u] = sb.y;
    ss[(m0 + 2u) * SS + cg + 8u] = sb.z;
    ss[(m0 + 3u) * SS + cg + 8u] = sb.w;
    workgroupBarrier();

    // 2. online softmax of row li; meanwhile everyone loads the V tile over K's.
    if (li < M) {
      var tmax = NEG;
      for (var j = 0u; j < BK; j++) { tmax = max(tmax, ss[li * SS + j]); }
      let m_new = max(m_run, tmax);
      let alpha = exp2(m_run - m_new);
      var sum = 0.0;
      for (var j = 0u; j < BK; j++) {
        let sv = ss[li * SS + j];
        let pj = select(0.0, exp2(sv - m_new), sv > NEG_HALF);
        ss[li * SS + j] = pj;
        sum += pj;
      }
      l_run = l_run * alpha + sum;
      m_run = m_new;
      rowv[li] = alpha;
    }
    for (var i = li; i < BK * HD4; i += WG) {
      let j = i / HD4;
      let d = i % HD4;
      var val = vec4<f32>(0.0);
      if (k0 + j < k_end) { val = v[vbase + (k0 + j) * p.k_row + d]; }
      kvs[j * QS + d] = val;
    }
    workgroupBarrier();

    // 3. O = O·alpha + P·V
    let a = vec4<f32>(rowv[m0], rowv[m0 + 1u], rowv[m0 + 2u], rowv[m0 + 3u]);
    acc0 = scale_cols(acc0, a);
    if (NC > 1u) { acc1 = scale_cols(acc1, a); }
    if (NC > 2u) { acc2 = scale_cols(acc2, a); }
    if (NC > 3u) { acc3 = scale_cols(acc3, a); }
    let jn = min(BK, k_end - k0);
    for (var j = 0u; j < jn; j++) {
      let pr = vec4<f32>(ss[m0 * SS + j], ss[(m0 + 1u) * SS + j], ss[(m0 + 2u) * SS + j], ss[(m0 + 3u) * SS + j]);
      let vrow = j * QS + cg;
      if (cg < HD4) { acc0 += outer(kvs[vrow], pr); }
      if (NC > 1u && cg + 8u < HD4) { acc1 += outer(kvs[vrow + 8u], pr); }
      if (NC > 2u && cg + 16u < HD4) { acc2 += outer(kvs[vrow + 16u], pr); }
      if (NC > 3u && cg + 24u < HD4) { acc3 += outer(kvs[vrow + 24u], pr); }
    }
  }

  workgroupBarrier();
  if (li < M) { rowv[li] = l_run; }
  workgroupBarrier();
  let obase = b * p.o_batch + r0 * p.o_row + h0 * HD4;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m < nv) {
      let l = rowv[m];
      // A row that sees no key at all (kv_len = 0) gets zeros rather than 0/0.
      let inv = select(0.0, 1.0 / l, l > 0.0);
      let ob = obase + (m / nh) * p.o_row + (m % nh) * HD4 + cg;
      if (cg < HD4) { o[ob] = acc0[i] * inv; }
      if (NC > 1u && cg + 8u < HD4) { o[ob + 8u] = acc1[i] * inv; }
      if (NC > 2u && cg + 16u < HD4) { o[ob + 16u] = acc2[i] * inv; }
      if (NC > 3u && cg + 24u < HD4) { o[ob + 24u] = acc3[i] * inv; }
    }
  }
}

// ---- Variant 'rows' (CPU adapters) ----
// SwiftShader pays ~1 µs per f32 of workgroup memory per workgroup (measured) and tens of µs per
// barrier: that is nearly the whole cost of the tiled kernel there. This entry point uses neither: one
// invocation per (batch, query row, head) runs the online softmax over its keys with q and the output
// in private memory. Invocations of one row are adjacent, so heads sharing a KV row read it from cache.
// The running max is rescaled only when it grows (softmax_step: shaders/common/online_softmax.wgsl).

@compute @workgroup_size(16)
fn main_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 16u;
  if (idx >= p.seq * p.heads) { return; }
  let b = gid.z;
  let h = idx % p.heads;
  let row = idx / p.heads;
  let kvh = h / p.group;
  var qv: array<vec4<f32>, HD4_MAX>;
  var acc: array<vec4<f32>, HD4_MAX>;
  let qb = p.q_off + b * p.q_batch + row * p.q_row + h * HD4;
  for (var d = 0u; d < HD4; d++) {
    qv[d] = q[qb + d] * p.scale_log2;
    acc[d] = vec4<f32>(0.0);
  }
  var k_end = p.kv_len;
  if (p.causal != 0u) { k_end = min(k_end, p.past + row + 1u); }
  let kb = p.k_off + b * p.k_batch + kvh * p.k_head;
  let vb = p.v_off + b * p.k_batch + kvh * p.k_head;
  var m = NEG;
  var l = 0.0;
  for (var j = 0u; j < k_end; j++) {
    let kr = kb + j * p.k_row;
    var s = 0.0;
    for (var d = 0u; d < HD4; d++) { s += dot(qv[d], k[kr + d]); }
    let pj = softmax_step(s, &m, &l, &acc);
    let vr = vb + j * p.k_row;
    for (var d = 0u; d < HD4; d++) { acc[d] = fma(vec4<f32>(pj), v[vr + d], acc[d]); }
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let ob = b * p.o_batch + row * p.o_row + h * HD4;
  for (var d = 0u; d < HD4; d++) { o[ob + d] = acc[d] * inv; }
}

// ---- Variant 'rows-shared' (GPUs) ----
// FlashAttention-1 style: a workgroup of 64 invocations owns 64 consecutive query rows of one head, one row
// per invocation with q and the output in registers; tiles of SB keys (K and V rows) are staged in workgroup
// memory once and read by all 64 (the same address across a warp: a broadcast). No score tile, no
// per-row serial softmax phase, two barriers per tile. Causal rows stop at their own position.

override SB: u32 = 32u;                // keys per staged tile (SB · HD4 · 2 vec4 fit the workgroup budget)
override SB_SIZE: u32 = SB * HD4;
var<workgroup> ks: array<vec4<f32>, SB_SIZE>;
var<workgroup> vs: array<vec4<f32>, SB_SIZE>;

@compute @workgroup_size(64)
fn main_rows_shared(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let h = wid.y;
  let kvh = h / p.group;
  let row0 = wid.x * 64u;
  let row = row0 + li;
  let valid = row < p.seq;
  var qv: array<vec4<f32>, HD4_MAX>;
  var acc: array<vec4<f32>, HD4_MAX>;
  let qb = p.q_off + b * p.q_batch + min(row, p.seq - 1u) * p.q_row + h * HD4;
  for (var d = 0u; d < HD4; d++) {
    qv[d] = q[qb + d] * p.scale_log2;
    acc[d] = vec4<f32>(0.0);
  }
  // Keys this row sees, and (uniform over the workgroup) keys any of its rows sees.
  var my_end = p.kv_len;
  var wg_end = p.kv_len;
  if (p.causal != 0u) {
    my_end = min(my_end, p.past + row + 1u);
    wg_end = min(wg_end, p.past + min(p.seq, row0 + 64u));
  }
  if (!valid) { my_end = 0u; }
  let kb = p.k_off + b * p.k_batch + kvh * p.k_head;
  let vb = p.v_off + b * p.k_batch + kvh * p.k_head;
  var m = NEG;
  var l = 0.0;
  for (var k0 = 0u; k0 < wg_end; k0 += SB) {
    workgroupBarrier(); // the previous tile is consumed
    for (var i = li; i < SB * HD4; i += 64u) {
      let j = i / HD4;
      let d = i % HD4;
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (k0 + j < wg_end) {
        kv = k[kb + (k0 + j) * p.k_row + d];
        vv = v[vb + (k0 + j) * p.k_row + d];
      }
      ks[i] = kv;
      vs[i] = vv;
    }
    workgroupBarrier();
    let jn = min(SB, select(0u, my_end - k0, my_end > k0));
    for (var j = 0u; j < jn; j++) {
      var s = 0.0;
      for (var d = 0u; d < HD4; d++) { s += dot(qv[d], ks[j * HD4 + d]); }
      let pj = softmax_step(s, &m, &l, &acc);
      for (var d = 0u; d < HD4; d++) { acc[d] = fma(vec4<f32>(pj), vs[j * HD4 + d], acc[d]); }
    }
  }
  if (valid) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let ob = b * p.o_batch + row * p.o_row + h * HD4;
    for (var d = 0u; d < HD4; d++) { o[ob + d] = acc[d] * inv; }
  }
}
