// SigLIP / Idefics3 patch embedding without im2col: Conv2d(C, D, kernel p, stride p, no padding) on
// normalised pixels x[frames, C, H, W], flattened to patches, plus conv bias and learned position rows:
//   out[f, P, o] = bias[o] + pos[P, o] + Σ_{c, ky, kx} w[o, c, ky, kx] · x[f, c, py·p + ky, px·p + kx]
// with P = py·(W/p) + px (row-major patches, identity position ids). As a GEMM: M = frames·patches rows
// (patches), N = D, K = C·p·p with w [D, K] exactly the PyTorch weight layout. Tiled like matmul.wgsl:
// a 64-patch × 64-channel tile per workgroup of 16×16 invocations (4×4 outputs each), K in steps of 16
// through workgroup memory. A K step of 16 is 16 consecutive kx of one pixel row when p = 16 (64-byte runs);
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

const TILE = 64u;
const TK = 16u;
var<workgroup> As: array<f32, 1024>; // [TK][TILE] pixels
var<workgroup> Bs: array<f32, 1024>; // [TK][TILE] weights

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;   // first patch of the tile
  let col0 = wg.x * TILE;   // first output channel
  let kk = li % TK;         // this invocation always loads k offset kk of each step
  let pp = u.p * u.p;
  let plane = u.H * u.W;
  // Pixel offset of patch (row0 + li/16 + 16i)'s top-left corner for the 4 patches this invocation loads.
  var base: array<u32, 4>;
  var valid: array<bool, 4>;
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + li / TK + i * 16u;
    valid[i] = m < u.M;
    let f = m / u.patches;
    let P = m % u.patches;
    base[i] = f * u.C * plane + (P / u.nw) * u.p * u.W + (P % u.nw) * u.p;
  }
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    let gk = k0 + kk;
    let c = gk / pp;
    let r = gk % pp;
    let koff = c * plane + (r / u.p) * u.W + r % u.p;
    for (var i = 0u; i < 4u; i++) {
      let t = li / TK + i * 16u;   // row of the tile this load fills
      var av = 0.0;
      if (valid[i] && gk < u.K) { av = x[base[i] + koff]; }
      As[kk * TILE + t] = av;
      var bv = 0.0;
      if (col0 + t < u.D && gk < u.K) { bv = w[(col0 + t) * u.K + gk]; }
      Bs[kk * TILE + t] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = As[k * TILE + lid.y * 4u + i];
        br[i] = Bs[k * TILE + lid.x * 4u + i];
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
    let m = row0 + lid.y * 4u + i;
    if (m >= u.M) { break; }
    let P = m % u.patches;
    for (var j = 0u; j < 4u; j++) {
      let o = col0 + lid.x * 4u + j;
      if (o < u.D) {
        var v = acc[i * 4u + j];
        if (u.has_bias != 0u) { v += bias[o]; }
        if (u.has_pos != 0u) { v += pos[P * u.D + o]; }
        y[m * u.D + o] = v;
      }
    }
  }
}

// ---- register blocks, no workgroup memory (CPU adapters) ----

// Pixel offset of patch m's top-left corner.
fn patch_base(m: u32) -> u32 {
  let f = m / u.patches;
  let P = m % u.patches;
  return f * u.C * u.H * u.W + (P / u.nw) * u.p * u.W + (P % u.nw) * u.p;
}

fn store_patch(m: u32, o0: u32, v: vec4<f32>) {
  if (m >= u.M) { return; }
  let P = m % u.patches;
  for (var j = 0u; j < 4u; j++) {
    let o = o0 + j;
    if (o < u.D) {
      var r = v[j];
      if (u.has_bias != 0u) { r += bias[o]; }
      if (u.has_pos != 0u) { r += pos[P * u.D + o]; }
      y[m * u.D + o] = r;
    }
  }
}

@compute @workgroup_size(8, 8)
fn main_register(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 4u;
  let o0 = gid.x * 4u;
  if (m0 >= u.M || o0 >= u.D) { return; }
  // Patches/channels past the edge read the last valid one (in bounds); their results are not stored.
  let x0 = patch_base(m0);
  let x1 = patch_base(min(m0 + 1u, u.M - 1u));
  let x2 = patch_base(min(m0 + 2u, u.M - 1u));
  let x3 = patch_base(min(m0 + 3u, u.M - 1u));
  let w0 = o0 * u.K;
  let w1 = min(o0 + 1u, u.D - 1u) * u.K;
  let w2 = min(o0 + 2u, u.D - 1u) * u.K;
  let w3 = min(o0 + 3u, u.D - 1u) * u.K;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var k = 0u;
  for (var c = 0u; c < u.C; c++) {
    for (var ky = 0u; ky < u.p; ky++) {
      let rowoff = c * u.H * u.W + ky * u.W;
      for (var kx = 0u; kx < u.p; kx++) {
        let off = rowoff + kx;
        let wv = vec4<f32>(w[w0 + k], w[w1 + k], w[w2 + k], w[w3 + k]);
        acc0 = fma(vec4<f32>(x[x0 + off]), wv, acc0);
        acc1 = fma(vec4<f32>(x[x1 + off]), wv, acc1);
        acc2 = fma(vec4<f32>(x[x2 + off]), wv, acc2);
        acc3 = fma(vec4<f32>(x[x3 + off]), wv, acc3);
        k++;
      }
    }
  }
  store_patch(m0, o0, acc0);
  store_patch(m0 + 1u, o0, acc1);
  store_patch(m0 + 2u, o0, acc2);
  store_patch(m0 + 3u, o0, acc3);
}

// p % 4 = 0 and W % 4 = 0: pixels and weights as vec4s.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main_register4(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 4u;
  let o0 = gid.x * 4u;
  if (m0 >= u.M || o0 >= u.D) { return; }
  let x0 = patch_base(m0) / 4u;
  let x1 = patch_base(min(m0 + 1u, u.M - 1u)) / 4u;
  let x2 = patch_base(min(m0 + 2u, u.M - 1u)) / 4u;
  let x3 = patch_base(min(m0 + 3u, u.M - 1u)) / 4u;
  let K4 = u.K / 4u;
  let w0 = o0 * K4;
  let w1 = min(o0 + 1u, u.D - 1u) * K4;
  let w2 = min(o0 + 2u, u.D - 1u) * K4;
  let w3 = min(o0 + 3u, u.D - 1u) * K4;
  let p4 = u.p / 4u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var k = 0u;
  for (var c = 0u; c < u.C; c++) {
    for (var ky = 0u; ky < u.p; ky++) {
      let rowoff = (c * u.H * u.W + ky * u.W) / 4u;
      for (var kx = 0u; kx < p4; kx++) {
        let off = rowoff + kx;
        let v0 = w4[w0 + k];
        let v1 = w4[w1 + k];
        let v2 = w4[w2 + k];
        let v3 = w4[w3 + k];
        let a0 = x4[x0 + off];
        let a1 = x4[x1 + off];
        let a2 = x4[x2 + off];
        let a3 = x4[x3 + off];
        acc0 += vec4<f32>(dot(a0, v0), dot(a0, v1), dot(a0, v2), dot(a0, v3));
        acc1 += vec4<f32>(dot(a1, v0), dot(a1, v1), dot(a1, v2), dot(a1, v3));
        acc2 += vec4<f32>(dot(a2, v0), dot(a2, v1), dot(a2, v2), dot(a2, v3));
        acc3 += vec4<f32>(dot(a3, v0), dot(a3, v1), dot(a3, v2), dot(a3, v3));
        k++;
      }
    }
  }
  store_patch(m0, o0, acc0);
  store_patch(m0 + 1u, o0, acc1);
  store_patch(m0 + 2u, o0, acc2);
  store_patch(m0 + 3u, o0, acc3);
}
