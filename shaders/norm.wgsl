// Row normalisations over x[rows, D], f32 throughout.
//   rms_norm:   y = w · (x · 1/√(mean(x²) + eps))                    (HF LlamaRMSNorm, computed in f32)
//   layer_norm: y = (x − mean) · 1/√(mean((x − mean)²) + eps) · w + b  (nn.LayerNorm, biased variance)
// LayerNorm takes the variance in a second pass over the deviations, not as E[x²] − E[x]², which cancels
// badly for rows with a large mean; both passes work on x − x[row, 0] (see layer_norm). The row is re-read
// per pass (it is at most 48 KiB, so it stays in cache). Two variants, picked per adapter (src/gpu/variants.ts):
//   rms_norm / layer_norm (workgroup, GPUs): one workgroup of WG invocations per row, each striding over the
//     row (coalesced); reductions: wg_sum (shaders/common/workgroup_reduce.wgsl: subgroupAdd when SUBGROUPS,
//     else a tree in workgroup memory).
//   rms_norm_row / layer_norm_row (CPU adapters): one row per invocation, no barriers, no workgroup memory.
//     CPU adapters run a workgroup's barriers by switching between its SIMD groups (64 of them for 256
//     invocations on SwiftShader's 4 lanes), and a subgroup reduction there leaves 64 partials that every
//     invocation re-reads: per row that costs ~100× the row's own arithmetic. Sums go in chunks of CHUNK
//     terms so the rounding error grows with CHUNK + D/CHUNK terms rather than D.
#if SUBGROUPS
enable subgroups;
#endif
#include "workgroup_reduce.wgsl"

struct Params {
  rows: u32,
  D: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
// rms_norm: out at 2, params at 3. layer_norm: bias at 2, out at 3, params at 4.
@group(0) @binding(2) var<storage, read_write> y_rms: array<f32>;
@group(0) @binding(3) var<uniform> p_rms: Params;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y_ln: array<f32>;
@group(0) @binding(4) var<uniform> p_ln: Params;

const WG = 256u;

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let li = lane.li;
  let row = row_of(wg, nwg);
  // The grid may hold a few extra workgroups (x·y ≥ rows); they skip the work but still reach every barrier.
  let live = row < p_rms.rows;
  let D = p_rms.D;
  let base = row * D;
  var ss = 0.0;
  if (live) {
    for (var i = li; i < D; i += WG) {
      let v = x[base + i];
      ss = fma(v, v, ss);
    }
  }
  let total = wg_sum(ss, lane);
  if (!live) { return; }
  let inv = inverseSqrt(total / f32(D) + p_rms.eps);
  for (var i = li; i < D; i += WG) {
    y_rms[base + i] = w[i] * (x[base + i] * inv);
  }
}

@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let li = lane.li;
  let row = row_of(wg, nwg);
  let live = row < p_ln.rows;
  let D = p_ln.D;
  let base = row * D;
  // Sum x − x[row, 0] rather than x: the shifted terms are small, so a large row mean (SigLIP residual
  // streams have them) does not cost the sum its low bits.
  var s = 0.0;
  var pivot = 0.0;
  if (live) {
    pivot = x[base];
    for (var i = li; i < D; i += WG) { s += x[base + i] - pivot; }
  }
  // Deviations are taken as (x − pivot) − shift, not x − mean: x − pivot is exact for nearby values and
  // the shift is small, so the mean's own rounding (half an ULP of |mean|) does not enter.
  let shift = wg_sum(s, lane) / f32(D);
  var sq = 0.0;
  if (live) {
    for (var i = li; i < D; i += WG) {
      let d = (x[base + i] - pivot) - shift;
      sq = fma(d, d, sq);
    }
  }
  let var_ = wg_sum(sq, lane) / f32(D);
  if (!live) { return; }
  let inv = inverseSqrt(var_ + p_ln.eps);
  for (var i = li; i < D; i += WG) {
    y_ln[base + i] = ((x[base + i] - pivot) - shift) * inv * w[i] + b[i];
  }
}

// ---- one row per invocation (CPU adapters) ----

override ROW_WG: u32 = 64u;
const CHUNK = 32u;

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * ROW_WG;
}

@compute @workgroup_size(ROW_WG)
fn rms_norm_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_index(gid, nwg);
  if (row >= p_rms.rows) { return; }
  let D = p_rms.D;
  let base = row * D;
  var ss = 0.0;
  for (var i0 = 0u; i0 < D; i0 += CHUNK) {
    let end = min(i0 + CHUNK, D);
    var c = 0.0;
    for (var i = i0; i < end; i++) {
      let v = x[base + i];
      c = fma(v, v, c);
    }
    ss += c;
  }
  let inv = inverseSqrt(ss / f32(D) + p_rms.eps);
  for (var i = 0u; i < D; i++) {
    y_rms[base + i] = w[i] * (x[base + i] * inv);
  }
}

@compute @workgroup_size(ROW_WG)
fn layer_norm_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_index(gid, nwg);
  if (row >= p_ln.rows) { return; }
  let D = p_ln.D;
  let base = row * D;
  // Same pivot and shift as layer_norm (see there): exact x − pivot, small shift.
  let pivot = x[base];
  var s = 0.0;
  for (var i0 = 0u; i0 < D; i0 += CHUNK) {
    let end = min(i0 + CHUNK, D);
    var c = 0.0;
    for (var i = i0; i < end; i++) { c += x[base + i] - pivot; }
    s += c;
  }
  let shift = s / f32(D);
  var sq = 0.0;
  for (var i0 = 0u; i0 < D; i0 += CHUNK) {
    let end = min(i0 + CHUNK, D);
    var c = 0.0;
    for (var i = i0; i < end; i++) {
      let d = (x[base + i] - pivot) - shift;
      c = fma(d, d, c);
    }
    sq += c;
  }
  let inv = inverseSqrt(sq / f32(D) + p_ln.eps);
  for (var i = 0u; i < D; i++) {
    y_ln[base + i] = ((x[base + i] - pivot) - shift) * inv * w[i] + b[i];
  }
}
