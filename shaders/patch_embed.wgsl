// SigLIP / Idefics3 patch embedding without im2col: Conv2d(C, D, kernel p, stride p, no padding) on
// normalised pixels x[frames, C, H, W], flattened to patches, plus conv bias and learned position rows:
//   out[f, P, o] = bias[o] + pos[P, o] + Σ_{c, ky, kx} w[o, c, ky, kx] · x[f, c, py·p + ky, px·p + kx]
// with P = py·(W/p) + px (row-major patches, identity position ids). As a GEMM: M = frames·patches rows
// (patches), N = D, K = C·p·p with w [D, K] exactly the PyTorch weight layout. Tiled like matmul.wgsl:
// a 64-patch × 64-channel tile per workgroup of 16×16 invocations (4×4 outputs each), K in steps of 16
// through workgroup memory. A K step of 16 is 16 consecutive kx of one pixel row when p = 16 (64-byte runs);
// the weights stream through the same tiles. Pixel addresses are recomputed per element from (patch, k),
// so no patch matrix is ever materialised.

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
