// SigLIP / Idefics3 patch embedding without im2col: Conv2d(C, D, kernel p, stride p, no padding) on
// normalised pixels x[frames, C, H, W], flattened to patches, plus conv bias and learned position rows:
//   out[f, P, o] = bias[o] + pos[P, o] + Σ_{c, ky, kx} w[o, c, ky, kx] · x[f, c, py·p + ky, px·p + kx]
// with P = py·(W/p) + px (row-major patches, identity position ids). As a GEMM: M = frames·patches rows
// (patches), N = D, K = C·p·p with w [D, K] exactly the PyTorch weight layout. Tiled like matmul.wgsl (the
// same tile: shaders/common/gemm_tile.wgsl): a 64-patch × 64-channel tile per workgroup of 16×16 invocations
// (4×4 outputs each), K in steps of 16 through workgroup memory. A K step of 16 is 16 consecutive kx of one pixel row when p = 16 (64-byte runs);
// the weights stream through the same tiles. Pixel addresses are recomputed per element from (patch, k),
// so no patch matrix is ever materialised. That is `main` (tiled, GPUs). `main_register` (CPU adapters,
// picked in src/gpu/variants.ts) computes a 4-patch × 4-channel block per invocation straight from pixels
// and weights, walking (c, ky, kx) in nested loops: no workgroup memory, no barriers (which CPU adapters
// run by switching through all SIMD groups of a workgroup), no divisions in the K loop. main_register4 is the
// same with vec4 loads along kx when p and W are multiples of 4 (every patch row then starts 16-byte aligned):
// on a CPU adapter every lane's load is a bounds-checked gather, so fewer, wider loads are what counts.

struct Params {
  M: u32,        // frames · patches
  D: u32,
  K: u32,        // C · p · p
  p: u32,
  H: u32,
  W: u32,
  nw: u32,       // patches per row: ⌊W/p⌋
  patches: u32,  // ⌊H/p⌋ · ⌊W/p⌋
  has_bias: u32,
  has_pos: u32,
  C: u32,        // input channels (3)
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> u: Params;

#include "gemm_tile.wgsl"
#include "gemm_block.wgsl"

// One output of patch m, channel o (+ bias, + position row), for both variants (the hook of
// shaders/common/gemm_tile.wgsl and gemm_block.wgsl).
fn tile_store(m: u32, o: u32, v: f32) {
  var r = v;
  if (u.has_bias != 0u) { r += bias[o]; }
  if (u.has_pos != 0u) { r += pos[(m % u.patches) * u.D + o]; }
  y[m * u.D + o] = r;
}

// Pixel offset of patch m's top-left corner.
fn patch_base(m: u32) -> u32 {
  let f = m / u.patches;
  let P = m % u.patches;
  return f * u.C * u.H * u.W + (P / u.nw) * u.p * u.W + (P % u.nw) * u.p;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;   // first patch of the tile
  let col0 = wg.x * TILE;   // first output channel
  let kk = li % TK;         // this invocation always loads k offset kk of each step
  let pp = u.p * u.p;
  let plane = u.H * u.W;
  // Pixel offset of the top-left corner of the 4 patches this invocation loads (tile rows tile_row(li, i)).
  var base: array<u32, 4>;
  var valid: array<bool, 4>;
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + tile_row(li, i);
    valid[i] = m < u.M;
    base[i] = patch_base(m);
  }
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    let gk = k0 + kk;
    let c = gk / pp;
    let r = gk % pp;
    let koff = c * plane + (r / u.p) * u.W + r % u.p;
    for (var i = 0u; i < 4u; i++) {
      var av = 0.0;
      if (valid[i] && gk < u.K) { av = x[base[i] + koff]; }
      let o = col0 + tile_row(li, i);
      var bv = 0.0;
      if (o < u.D && gk < u.K) { bv = w[o * u.K + gk]; }
      tile_put(li, i, av, bv);
    }
    tile_step(&acc, lid.xy);
  }
  tile_write(&acc, row0, col0, lid.xy, u.M, u.D);
}

// ---- register blocks, no workgroup memory (CPU adapters; shaders/common/gemm_block.wgsl) ----

// Pixel offsets of patches m0..m0+3; patches past the last re-read it (in bounds; not stored).
fn patch_rows(m0: u32) -> vec4<u32> {
  let last = u.M - 1u;
  return vec4<u32>(patch_base(m0), patch_base(min(m0 + 1u, last)), patch_base(min(m0 + 2u, last)), patch_base(min(m0 + 3u, last)));
}

@compute @workgroup_size(8, 8)
fn main_register(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 4u;
  let o0 = gid.x * 4u;
  if (m0 >= u.M || o0 >= u.D) { return; }
  let px = patch_rows(m0);
  let wr = block_rows(o0, u.D, u.K);
  var acc = mat4x4<f32>();
  var k = 0u;
  for (var c = 0u; c < u.C; c++) {
    for (var ky = 0u; ky < u.p; ky++) {
      let rowoff = c * u.H * u.W + ky * u.W;
      for (var kx = 0u; kx < u.p; kx++) {
        let off = rowoff + kx;
        let xv = vec4<f32>(x[px.x + off], x[px.y + off], x[px.z + off], x[px.w + off]);
        block_fma(&acc, xv, vec4<f32>(w[wr.x + k], w[wr.y + k], w[wr.z + k], w[wr.w + k]));
        k++;
      }
    }
  }
  block_write(acc, m0, o0, u.M, u.D);
}

// p % 4 = 0 and W % 4 = 0: pixels and weights as vec4s.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main_register4(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 4u;
  let o0 = gid.x * 4u;
  if (m0 >= u.M || o0 >= u.D) { return; }
  let px = patch_rows(m0) / 4u;
  let wr = block_rows(o0, u.D, u.K / 4u);
  let p4 = u.p / 4u;
  var acc = mat4x4<f32>();
  var k = 0u;
  for (var c = 0u; c < u.C; c++) {
    for (var ky = 0u; ky < u.p; ky++) {
      let rowoff = (c * u.H * u.W + ky * u.W) / 4u;
      for (var kx = 0u; kx < p4; kx++) {
        let off = rowoff + kx;
        let xs = mat4x4<f32>(x4[px.x + off], x4[px.y + off], x4[px.z + off], x4[px.w + off]);
        block_dot(&acc, xs, mat4x4<f32>(w4[wr.x + k], w4[wr.y + k], w4[wr.z + k], w4[wr.w + k]));
        k++;
      }
    }
  }
  block_write(acc, m0, o0, u.M, u.D);
}
