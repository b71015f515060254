// Tiled f32 matmul: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias[N]).
// B is in nn.Linear layout (out_features, in_features), so both operands are read along K.
// A 64×64 output tile per workgroup of 16×16 invocations (4×4 outputs each); K in steps of 16 through
// workgroup memory. Loads are coalesced along K; edges (M, N, K not multiples of the tile) are masked.

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
