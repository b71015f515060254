// f32 matmul: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N]).
// B is in nn.Linear layout (out_features, in_features), so both operands are read along K.
// Two variants, picked per adapter (src/gpu/variants.ts):
//   main (tiled, GPUs): a 64×64 output tile per workgroup of 16×16 invocations (4×4 outputs each); K in
//     steps of 16 through workgroup memory (shaders/common/gemm_tile.wgsl). Loads are coalesced along K;
//     edges (M, N, K not multiples of the tile) are masked.
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

#include "gemm_tile.wgsl"
#include "gemm_block.wgsl"

// One output (+ bias), for both variants (the hook of shaders/common/gemm_tile.wgsl and gemm_block.wgsl).
fn tile_store(r: u32, col: u32, v: f32) {
  var o = v;
  if (p.has_bias != 0u) { o += bias[col]; }
  c[r * p.N + col] = o;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    let gk = k0 + li % TK;
    for (var i = 0u; i < 4u; i++) {
      let t = tile_row(li, i);
      var av = 0.0;
      if (row0 + t < p.M && gk < p.K) { av = a[(row0 + t) * p.K + gk]; }
      var bv = 0.0;
      if (col0 + t < p.N && gk < p.K) { bv = b[(col0 + t) * p.K + gk]; }
      tile_put(li, i, av, bv);
    }
    tile_step(&acc, lid.xy);
  }
  tile_write(&acc, row0, col0, lid.xy, p.M, p.N);
}

// ---- register blocks, no workgroup memory (CPU adapters; shaders/common/gemm_block.wgsl) ----

@compute @workgroup_size(8, 8)
fn main_register(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r0 = gid.y * 4u;
  let c0 = gid.x * 4u;
  if (r0 >= p.M || c0 >= p.N) { return; }
  let ra = block_rows(r0, p.M, p.K);
  let rb = block_rows(c0, p.N, p.K);
  var acc = mat4x4<f32>();
  for (var k = 0u; k < p.K; k++) {
    let av = vec4<f32>(a[ra.x + k], a[ra.y + k], a[ra.z + k], a[ra.w + k]);
    block_fma(&acc, av, vec4<f32>(b[rb.x + k], b[rb.y + k], b[rb.z + k], b[rb.w + k]));
  }
  block_write(acc, r0, c0, p.M, p.N);
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
  let ra = block_rows(r0, p.M, K4);
  let rb = block_rows(c0, p.N, K4);
  var acc = mat4x4<f32>();
  for (var k = 0u; k < K4; k++) {
    let xs = mat4x4<f32>(a4[ra.x + k], a4[ra.y + k], a4[ra.z + k], a4[ra.w + k]);
    block_dot(&acc, xs, mat4x4<f32>(b4[rb.x + k], b4[rb.y + k], b4[rb.z + k], b4[rb.w + k]));
  }
  block_write(acc, r0, c0, p.M, p.N);
}
