// Low-resolution-query token compression (training-free visual token pooling by attention).
// X [F, H, W, C] row-major. Query grid Hq × Wq = ceil(H/s) × ceil(W/s). Entry points:
//   pool:         Q0[f, i, j, :] = mean of X over the real tokens of region (i·s.., j·s..) (clipped at edges).
//   attend:       one workgroup per (frame, query); heads live in lanes. For each head h
//                 y_h = Σ_t softmax_t(q_h · k_{t,h}) v_{t,h} over the query's window (q pre-scaled),
//                 online softmax over tiles of window tokens so any window (up to global) fits.
//   attend_row:   the same, one invocation per (frame, query, head), for CPU adapters (head_dim ≤ 256).
//   add_residual: Y = O + R (R shared over frames when r_fstride = 0), used after an output projection.
// The exact formula, window geometry and workspace plan are documented in src/kernels/compress.ts.

struct Params {
  F: u32, H: u32, W: u32, C: u32,
  heads: u32, hd: u32, Hq: u32, Wq: u32,
  s: u32, win: u32, stride: u32, pad: u32,
  global_win: u32,
  q_mode: u32,     // 0: pool the query from x in this kernel; 1: read it from q
  q_fstride: u32,  // elements between frames in q (0: one query set shared by all frames)
  r_mode: u32,     // 0: no residual; 1: add the (unprojected) query read above; 2: add res
  r_fstride: u32,
  T: u32,          // window tokens per tile (T·heads ≤ PAIRS)
  scale: f32,
  _pad: u32,
}

// Pool / add_residual parameters.
struct Aux {
  F: u32, H: u32, W: u32, C: u32,
  Hq: u32, Wq: u32, s: u32, total: u32,
  per_frame: u32, r_fstride: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;        // attend, pool: X; add_residual: O
@group(0) @binding(1) var<storage, read> k: array<f32>;        // attend only (binding 1 is dst elsewhere)
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;        // add_residual: R
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read_write> dst: array<f32>; // pool, add_residual
@group(0) @binding(2) var<uniform> a: Aux;

override WG: u32 = 256;
const MAXR = 8u;     // channels per invocation: C ≤ 8·WG
const MAXC = 2048u;
const PAIRS = 256u;  // (token, head) pairs of one tile: T·heads ≤ PAIRS
// 11 KiB of workgroup memory in all: fits the 16 KiB WebGPU default.
var<workgroup> qsh: array<f32, MAXC>;  // the scaled query
var<workgroup> part: array<f32, PAIRS>; // partial dot products, [pair][segment]
var<workgroup> sc: array<f32, PAIRS>;   // scores, then unnormalised probabilities, [token][head]
var<workgroup> hsh: array<f32, PAIRS>;  // per head: rescale factor of this tile, then 1/l at the end

// Row-major element index of window token t (window origin r0, c0; width ww) of frame f.
fn token_base(f: u32, r0: u32, c0: u32, ww: u32, t: u32) -> u32 {
  return ((f * p.H + r0 + t / ww) * p.W + c0 + t % ww) * p.C;
}

// Query (i, j)'s window of tokens, clipped to the grid: rows [x, y), columns [z, w). Never empty (the binding
// guarantees it).
fn query_window(i: u32, j: u32) -> vec4<u32> {
  if (p.global_win != 0u) { return vec4<u32>(0u, p.H, 0u, p.W); }
  let wr = i32(i * p.stride) - i32(p.pad);
  let wc = i32(j * p.stride) - i32(p.pad);
  return vec4<u32>(u32(max(wr, 0)), u32(min(wr + i32(p.win), i32(p.H))),
                   u32(max(wc, 0)), u32(min(wc + i32(p.win), i32(p.W))));
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let Nq = p.Hq * p.Wq;
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.F * Nq) { return; } // whole workgroup: uniform
  let f = wid / Nq;
  let qi = wid % Nq;
  let i = qi / p.Wq;
  let j = qi % p.Wq;

  let win = query_window(i, j);
  let r0 = win.x;
  let c0 = win.z;
  let ww = win.w - c0;
  let n = (win.y - r0) * ww;

  // This invocation's channels: c = li + r·WG, r < MAXR (constant trip counts keep arrays in registers).
  var q0: array<f32, MAXR>;
  var acc: array<f32, MAXR>;
  if (p.q_mode == 0u) {
    let pr0 = i * p.s; let pr1 = min(pr0 + p.s, p.H);
    let pc0 = j * p.s; let pc1 = min(pc0 + p.s, p.W);
    let inv = 1.0 / f32((pr1 - pr0) * (pc1 - pc0));
    for (var r = 0u; r < MAXR; r++) {
      let c = li + r * WG;
      if (c < p.C) {
        var sum = 0.0;
        for (var rr = pr0; rr < pr1; rr++) {
          for (var cc = pc0; cc < pc1; cc++) { sum += x[((f * p.H + rr) * p.W + cc) * p.C + c]; }
        }
        q0[r] = sum * inv;
      }
    }
  } else {
    let qb = f * p.q_fstride + qi * p.C;
    for (var r = 0u; r < MAXR; r++) {
      let c = li + r * WG;
      if (c < p.C) { q0[r] = q[qb + c]; }
    }
  }
  for (var r = 0u; r < MAXR; r++) {
    let c = li + r * WG;
    if (c < p.C) { qsh[c] = q0[r] * p.scale; }
    acc[r] = 0.0;
  }
  workgroupBarrier();

  var m = -3.0e38; // running max (head li), finite so exp(m − m') never sees inf − inf
  var l = 0.0;     // running denominator (head li)
  for (var t0 = 0u; t0 < n; t0 += p.T) {
    let tn = min(p.T, n - t0);
    // 1. Scores: `seg` invocations per (token, head) pair each sum a slice of head_dim, reading k
    //    along C (consecutive invocations → consecutive slices of the same token row).
    let pairs = tn * p.heads;
    var seg = 1u;
    while (seg * 2u * pairs <= WG && seg * 2u <= p.hd) { seg *= 2u; }
    let len = (p.hd + seg - 1u) / seg;
    for (var u = li; u < pairs * seg; u += WG) {
      let pr = u / seg;
      let h = pr % p.heads;
      let kb = token_base(f, r0, c0, ww, t0 + pr / p.heads) + h * p.hd;
      let e0 = (u % seg) * len;
      let e1 = min(e0 + len, p.hd);
      var sum = 0.0;
      for (var e = e0; e < e1; e++) { sum = fma(qsh[h * p.hd + e], k[kb + e], sum); }
      part[u] = sum;
    }
    workgroupBarrier();
    // 2. Online softmax, one invocation per head: combine partials, scores → unnormalised
    //    probabilities in place, rescale factor for what was accumulated so far.
    if (li < p.heads) {
      var mt = m;
      for (var t = 0u; t < tn; t++) {
        let pr = t * p.heads + li;
        var s = 0.0;
        for (var g = 0u; g < seg; g++) { s += part[pr * seg + g]; }
        sc[pr] = s;
        mt = max(mt, s);
      }
      var sum = 0.0;
      for (var t = 0u; t < tn; t++) {
        let e = exp(sc[t * p.heads + li] - mt);
        sc[t * p.heads + li] = e;
        sum += e;
      }
      let corr = exp(m - mt);
      l = l * corr + sum;
      m = mt;
      hsh[li] = corr;
    }
    workgroupBarrier();
    // 3. acc ← acc·corr + Σ_t p_t v_t, coalesced along C.
    for (var r = 0u; r < MAXR; r++) {
      let c = li + r * WG;
      if (c < p.C) { acc[r] *= hsh[c / p.hd]; }
    }
    for (var t = 0u; t < tn; t++) {
      let vb = token_base(f, r0, c0, ww, t0 + t);
      for (var r = 0u; r < MAXR; r++) {
        let c = li + r * WG;
        if (c < p.C) { acc[r] = fma(sc[t * p.heads + c / p.hd], v[vb + c], acc[r]); }
      }
    }
    workgroupBarrier();
  }
  if (li < p.heads) { hsh[li] = 1.0 / l; }
  workgroupBarrier();

  let ob = wid * p.C;
  let rb = f * p.r_fstride + qi * p.C;
  for (var r = 0u; r < MAXR; r++) {
    let c = li + r * WG;
    if (c < p.C) {
      var o = acc[r] * hsh[c / p.hd];
      if (p.r_mode == 1u) { o += q0[r]; } else if (p.r_mode == 2u) { o += res[rb + c]; }
      y[ob + c] = o;
    }
  }
}

// CPU-adapter variant: one invocation per (frame, query, head), no workgroup memory and no barriers
// (barriers dominate on SwiftShader/llvmpipe, where invocations are coroutines). The invocation owns
// y[frame, query, head·hd ..]: it parks the unscaled query there, then overwrites it with the result.
const MAXHD = 256u;

@compute @workgroup_size(64)
fn attend_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = gid.x + gid.y * nwg.x * 64u;
  let Nq = p.Hq * p.Wq;
  if (id >= p.F * Nq * p.heads) { return; }
  let h = id % p.heads;
  let wid = id / p.heads;
  let f = wid / Nq;
  let qi = wid % Nq;
  let i = qi / p.Wq;
  let j = qi % p.Wq;
  let win = query_window(i, j);
  let r0 = win.x;
  let c0 = win.z;
  let ww = win.w - c0;
  let n = (win.y - r0) * ww;
  let hd = p.hd;
  let ob = wid * p.C + h * hd;

  if (p.q_mode == 0u) {
    let pr0 = i * p.s; let pr1 = min(pr0 + p.s, p.H);
    let pc0 = j * p.s; let pc1 = min(pc0 + p.s, p.W);
    let inv = 1.0 / f32((pr1 - pr0) * (pc1 - pc0));
    for (var e = 0u; e < hd; e++) { y[ob + e] = 0.0; }
    for (var rr = pr0; rr < pr1; rr++) {
      for (var cc = pc0; cc < pc1; cc++) {
        let xb = ((f * p.H + rr) * p.W + cc) * p.C + h * hd;
        for (var e = 0u; e < hd; e++) { y[ob + e] += x[xb + e]; }
      }
    }
    for (var e = 0u; e < hd; e++) { y[ob + e] *= inv; }
  } else {
    let qb = f * p.q_fstride + qi * p.C + h * hd;
    for (var e = 0u; e < hd; e++) { y[ob + e] = q[qb + e]; }
  }

  var acc: array<f32, MAXHD>;
  for (var e = 0u; e < hd; e++) { acc[e] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  for (var t = 0u; t < n; t++) {
    let tb = token_base(f, r0, c0, ww, t) + h * hd;
    var s = 0.0;
    for (var e = 0u; e < hd; e++) { s = fma(y[ob + e], k[tb + e], s); }
    s *= p.scale;
    if (s > m) { // new running max: rescale what was accumulated
      let corr = exp(m - s);
      for (var e = 0u; e < hd; e++) { acc[e] *= corr; }
      l *= corr;
      m = s;
    }
    let pt = exp(s - m);
    l += pt;
    for (var e = 0u; e < hd; e++) { acc[e] = fma(pt, v[tb + e], acc[e]); }
  }
  let inv_l = 1.0 / l;
  let rb = f * p.r_fstride + qi * p.C + h * hd;
  for (var e = 0u; e < hd; e++) {
    var o = acc[e] * inv_l;
    if (p.r_mode == 1u) { o += y[ob + e]; } else if (p.r_mode == 2u) { o += res[rb + e]; }
    y[ob + e] = o;
  }
}

// One invocation per output element; consecutive invocations read consecutive channels.
@compute @workgroup_size(256)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= a.total) { return; }
  let c = e % a.C;
  let rest = e / a.C;
  let Nq = a.Hq * a.Wq;
  let qi = rest % Nq;
  let f = rest / Nq;
  let pr0 = (qi / a.Wq) * a.s; let pr1 = min(pr0 + a.s, a.H);
  let pc0 = (qi % a.Wq) * a.s; let pc1 = min(pc0 + a.s, a.W);
  var sum = 0.0;
  for (var rr = pr0; rr < pr1; rr++) {
    for (var cc = pc0; cc < pc1; cc++) { sum += x[((f * a.H + rr) * a.W + cc) * a.C + c]; }
  }
  dst[e] = sum / f32((pr1 - pr0) * (pc1 - pc0));
}

// dst[e] = src[e] + R[frame(e) · r_fstride + e mod per_frame]   (src in x, R in q; both read-only).
@compute @workgroup_size(256)
fn add_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= a.total) { return; }
  dst[e] = x[e] + q[(e / a.per_frame) * a.r_fstride + e % a.per_frame];
}
