// Row softmax with temperature over x[rows, N]: y = exp((x − max)/T) / Σ exp((x − max)/T), f32.
// One workgroup per row (any N: the vocabulary's ~49k too), three strided passes: max, sum, write.
// Subtracting the max first keeps exp ≤ 1 (no overflow); (x − max)/T = x/T − max/T as HF's scores / T.
// Rows that are entirely −inf give NaN, as torch does. INPLACE: y is x (one read_write binding).
#if SUBGROUPS
enable subgroups;
#endif

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
var<workgroup> red: array<f32, WG>;

struct Lane {
  li: u32,
  sg_lane: u32,
  sg_size: u32,
}

// op 0: sum, 1: max. Every invocation gets the result. Call from uniform control flow.
fn combine(a: f32, b: f32, op: u32) -> f32 {
  return select(a + b, max(a, b), op == 1u);
}

fn wg_reduce(v: f32, op: u32, l: Lane) -> f32 {
  workgroupBarrier();
#if SUBGROUPS
  // Subgroups are contiguous runs of local_invocation_index in a 1-D workgroup (see norm.wgsl).
  var s: f32;
  if (op == 1u) { s = subgroupMax(v); } else { s = subgroupAdd(v); }
  if (l.sg_lane == 0u) { red[l.li / l.sg_size] = s; }
  workgroupBarrier();
  var t = red[0];
  let nsg = (WG + l.sg_size - 1u) / l.sg_size;
  for (var i = 1u; i < nsg; i++) { t = combine(t, red[i], op); }
  return t;
#else
  red[l.li] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (l.li < stride) { red[l.li] = combine(red[l.li], red[l.li + stride], op); }
    workgroupBarrier();
  }
  return red[0];
#endif
}

fn store(i: u32, v: f32) {
#if INPLACE
  x[i] = v;
#else
  y[i] = v;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32
#if SUBGROUPS
        , @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32
#endif
        ) {
#if SUBGROUPS
  let l = Lane(li, sg_lane, sg_size);
#else
  let l = Lane(li, 0u, 1u);
#endif
  let row = wg.x + wg.y * nwg.x;
  let live = row < p.rows;
  let base = row * p.N;
  // Scale first (scores / T, as HF), then the max of the scaled row. −3.4e38 stands in for −inf
  // (an infinite literal is a WGSL compile error); a row of −inf still yields NaN below, as in torch.
  var m = -3.4028234663852886e38;
  if (live) {
    for (var i = li; i < p.N; i += WG) { m = max(m, x[base + i] / p.temperature); }
  }
  let mx = wg_reduce(m, 1u, l);
  var s = 0.0;
  if (live) {
    for (var i = li; i < p.N; i += WG) { s += exp(x[base + i] / p.temperature - mx); }
  }
  let total = wg_reduce(s, 0u, l);
  if (!live) { return; }
  let inv = 1.0 / total;
  for (var i = li; i < p.N; i += WG) {
    store(base + i, exp(x[base + i] / p.temperature - mx) * inv);
  }
}
