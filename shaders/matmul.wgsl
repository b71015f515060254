// f32 matmul: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N]).
// B is in nn.Linear layout (out_features, in_features), so both operands are read along K.
// Two variants, picked per adapter (src/gpu/variants.ts):
//   main (tiled, GPUs): a 64×64 output tile per workgroup of 16×16 invocations (4×4 outputs each); K in
//     steps of 16 through workgroup memory. Loads are coalesced along K; edges (M, N, K not multiples of
//     the tile) are masked.
//   main_register (CPU adapters): each invocation computes a 4×4 block of C straight from A and B (the CPU's
//     caches do the reuse workgroup memory does on a GPU), in four vec4 accumulators: no barriers, which
//     CPU adapters run by switching through every SIMD group of the workgroup twice per K step.
//     main_register4 is the same for K % 4 = 0 with vec4 loads along K: a CPU adapter's lanes each load
//     from their own address (a gather, bounds-checked), so 8 vec4 loads per 64 FMAs instead of 8 scalar
//     loads per 16 is what makes it faster there.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE = 64u;
const TK = 16u;
var<workgroup> As: array<f32, 1024>; // [TK][TILE]
var<workgroup> Bs: array<f32, 1024>; // [TK][TILE]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = li + i * 256u;
      let r = idx / TK;
      let kk = idx % TK;
      let gk = k0 + kk;
      var av = 0.0;
      if (row0 + r < p.M && gk < p.K) { av = a[(row0 + r) * p.K + gk]; }
      As[kk * TILE + r] = av;
      var bv = 0.0;
      if (col0 + r < p.N && gk < p.K) { bv = b[(col0 + r) * p.K + gk]; }
      Bs[kk * TILE + r] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = As[kk * TILE + lid.y * 4u + i];
        br[i] = Bs[kk * TILE + lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col < p.N) {
        var v = acc[i * 4u + j];
        if (p.has_bias != 0u) { v += bias[col]; }
        c[r * p.N + col] = v;
      }
    }
  }
}

// ---- register tiles, no workgroup memory (CPU adapters) ----

@compute @workgroup_size(8, 8)
fn main_register(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r0 = gid.y * 4u;
  let c0 = gid.x * 4u;
  if (r0 >= p.M || c0 >= p.N) { return; }
  // Rows/columns past the edge read the last valid one (in bounds); their results are not stored.
  let a0 = r0 * p.K;
  let a1 = min(r0 + 1u, p.M - 1u) * p.K;
  let a2 = min(r0 + 2u, p.M - 1u) * p.K;
  let a3 = min(r0 + 3u, p.M - 1u) * p.K;
  let b0 = c0 * p.K;
  let b1 = min(c0 + 1u, p.N - 1u) * p.K;
  let b2 = min(c0 + 2u, p.N - 1u) * p.K;
  let b3 = min(c0 + 3u, p.N - 1u) * p.K;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k++) {
    let bv = vec4<f32>(b[b0 + k], b[b1 + k], b[b2 + k], b[b3 + k]);
    acc0 = fma(vec4<f32>(a[a0 + k]), bv, acc0);
    acc1 = fma(vec4<f32>(a[a1 + k]), bv, acc1);
    acc2 = fma(vec4<f32>(a[a2 + k]), bv, acc2);
    acc3 = fma(vec4<f32>(a[a3 + k]), bv, acc3);
  }
  var bias4 = vec4<f32>(0.0);
  if (p.has_bias != 0u) {
    bias4 = vec4<f32>(bias[c0], bias[min(c0 + 1u, p.N - 1u)], bias[min(c0 + 2u, p.N - 1u)], bias[min(c0 + 3u, p.N - 1u)]);
  }
  store_row(r0, c0, acc0 + bias4);
  store_row(r0 + 1u, c0, acc1 + bias4);
  store_row(r0 + 2u, c0, acc2 + bias4);
  store_row(r0 + 3u, c0, acc3 + bias4);
}

fn store_row(r: u32, c0: u32, v: vec4<f32>) {
  if (r >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (c0 + j < p.N) { c[r * p.N + c0 + j] = v[j]; }
  }
}

// K % 4 = 0: A and B as vec4 rows of K/4.
@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main_register4(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r0 = gid.y * 4u;
  let c0 = gid.x * 4u;
  if (r0 >= p.M || c0 >= p.N) { return; }
  let K4 = p.K / 4u;
  let a0 = r0 * K4;
  let a1 = min(r0 + 1u, p.M - 1u) * K4;
  let a2 = min(r0 + 2u, p.M - 1u) * K4;
  let a3 = min(r0 + 3u, p.M - 1u) * K4;
  let b0 = c0 * K4;
  let b1 = min(c0 + 1u, p.N - 1u) * K4;
  let b2 = min(c0 + 2u, p.N - 1u) * K4;
  let b3 = min(c0 + 3u, p.N - 1u) * K4;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k = 0u; k < K4; k++) {
    let w0 = b4[b0 + k];
    let w1 = b4[b1 + k];
    let w2 = b4[b2 + k];
    let w3 = b4[b3 + k];
    let x0 = a4[a0 + k];
    let x1 = a4[a1 + k];
    let x2 = a4[a2 + k];
    let x3 = a4[a3 + k];
    acc0 += vec4<f32>(dot(x0, w0), dot(x0, w1), dot(x0, w2), dot(x0, w3));
    acc1 += vec4<f32>(dot(x1, w0), dot(x1, w1), dot(x1, w2), dot(x1, w3));
    acc2 += vec4<f32>(dot(x2, w0), dot(x2, w1), dot(x2, w2), dot(x2, w3));
    acc3 += vec4<f32>(dot(x3, w0), dot(x3, w1), dot(x3, w2), dot(x3, w3));
  }
  var bias4 = vec4<f32>(0.0);
  if (p.has_bias != 0u) {
    bias4 = vec4<f32>(bias[c0], bias[min(c0 + 1u, p.N - 1u)], bias[min(c0 + 2u, p.N - 1u)], bias[min(c0 + 3u, p.N - 1u)]);
  }
  store_row(r0, c0, acc0 + bias4);
  store_row(r0 + 1u, c0, acc1 + bias4);
  store_row(r0 + 2u, c0, acc2 + bias4);
  store_row(r0 + 3u, c0, acc3 + bias4);
}
