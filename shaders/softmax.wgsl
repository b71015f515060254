// Row softmax with temperature over x[rows, N]: y = exp((x − max)/T) / Σ exp((x − max)/T), f32.
// One workgroup per row (any N: the vocabulary's ~49k too), three strided passes: max, sum, write; the
// reductions are shaders/common/workgroup_reduce.wgsl's.
// Subtracting the max first keeps exp ≤ 1 (no overflow); (x − max)/T = x/T − max/T as HF's scores / T.
// Rows that are entirely −inf give NaN, as torch does. INPLACE: y is x (one read_write binding).
#if SUBGROUPS
enable subgroups;
#endif
#include "workgroup_reduce.wgsl"

struct Params {
  rows: u32,
  N: u32,
  temperature: f32,
  _pad: u32,
}

#if INPLACE
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
#else
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

const WG = 256u;

fn store(i: u32, v: f32) {
#if INPLACE
  x[i] = v;
#else
  y[i] = v;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, lane: Lane) {
  let li = lane.li;
  let row = wg.x + wg.y * nwg.x;
  let live = row < p.rows;
  let base = row * p.N;
  // Scale first (scores / T, as HF), then the max of the scaled row. −3.4e38 stands in for −inf
  // (an infinite literal is a WGSL compile error); a row of −inf still yields NaN below, as in torch.
  var m = -3.4028234663852886e38;
  if (live) {
    for (var i = li; i < p.N; i += WG) { m = max(m, x[base + i] / p.temperature); }
  }
  let mx = wg_max(m, lane);
  var s = 0.0;
  if (live) {
    for (var i = li; i < p.N; i += WG) { s += exp(x[base + i] / p.temperature - mx); }
  }
  let total = wg_sum(s, lane);
  if (!live) { return; }
  let inv = 1.0 / total;
  for (var i = li; i < p.N; i += WG) {
    store(base + i, exp(x[base + i] / p.temperature - mx) * inv);
  }
}
