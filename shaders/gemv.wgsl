// f32 GEMV for decode: Y[m, n] = Σ_k X[m, k] · W[n, k] (+ bias[n]) for a few activation rows m < M (M ≤ 4).
// W in nn.Linear layout (N, K). Two entry points, picked per adapter (see src/gpu/variants.ts):
//   main_row:       one output row n per invocation, a straight loop over K (best on CPU adapters).
//   main_workgroup: ROWS output rows per workgroup, LANES invocations per row striding over K with
//                   coalesced loads, then a reduction (subgroupAdd when SUBGROUPS, else workgroup memory).
#if SUBGROUPS
enable subgroups;
#endif

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const MAX_M = 4u;

fn finish(m: u32, n: u32, v: f32) {
  var r = v;
  if (p.has_bias != 0u) { r += bias[n]; }
  y[m * p.N + n] = r;
}

@compute @workgroup_size(64)
fn main_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.N) { return; }
  var acc: array<f32, MAX_M>;
  let wrow = n * p.K;
  for (var k = 0u; k < p.K; k++) {
    let wv = w[wrow + k];
    for (var m = 0u; m < p.M; m++) {
      acc[m] = fma(x[m * p.K + k], wv, acc[m]);
    }
  }
  for (var m = 0u; m < p.M; m++) { finish(m, n, acc[m]); }
}

const LANES = 32u;
const ROWS = 8u;
var<workgroup> red: array<f32, 1024>; // [MAX_M][ROWS * LANES]

@compute @workgroup_size(256)
fn main_workgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32
#if SUBGROUPS
                  , @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32
#endif
                  ) {
  let row_in_wg = li / LANES;
  let lane = li % LANES;
  let n = (wg.x + wg.y * nwg.x) * ROWS + row_in_wg;
  var acc: array<f32, MAX_M>;
  if (n < p.N) {
    let wrow = n * p.K;
    for (var k = lane; k < p.K; k += LANES) {
      let wv = w[wrow + k];
      for (var m = 0u; m < p.M; m++) {
        acc[m] = fma(x[m * p.K + k], wv, acc[m]);
      }
    }
  }
  for (var m = 0u; m < MAX_M; m++) {
#if SUBGROUPS
    // Subgroups are contiguous runs of local_invocation_index in a 1-D workgroup; LANES is a multiple
    // of any subgroup size ≤ 32, so each subgroup lies inside one row's lanes. Larger subgroups use
    // the workgroup-memory path below (sg_size > LANES is uniform, so this branch is uniform).
    if (sg_size <= LANES) {
      let s = subgroupAdd(acc[m]);
      red[m * 256u + li] = select(0.0, s, sg_lane == 0u);
    } else {
      red[m * 256u + li] = acc[m];
    }
#else
    red[m * 256u + li] = acc[m];
#endif
  }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      for (var m = 0u; m < MAX_M; m++) {
        red[m * 256u + li] += red[m * 256u + li + stride];
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) { finish(m, n, red[m * 256u + li]); }
  }
}
