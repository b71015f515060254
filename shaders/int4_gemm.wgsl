// int4 GEMM for prefill: C[M, N] = A[M, K] · dequant(W)ᵀ (+ bias[N]), f32 accumulation.
// Weight format in src/kernels/int4.ts (row n, block b = 4 u32 words; word j's nibble i = element 32b+4i+j).
// A 64×64 output tile per workgroup of 16×16 invocations (4×4 outputs each), K in steps of one 32-element
// block. Per step the W tile (64 rows × one block = 64×16 bytes) is dequantized once into workgroup
// memory as f32: each invocation loads one u32 word (consecutive invocations read consecutive words:
// coalesced) and writes its 8 weights scaled. A is staged the same way; the inner loop is vec4 reads.
// Padded K (the weight tail is q = 0) reads A as 0; edges in M and N are masked.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
  blocks: u32,
  scale_stride: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override BLOCKS_PER_GROUP: u32 = 1u;
override SCALE_F16: bool = false;

#if WIDE
// WIDE (GPUs, large M·N): a 128×128 tile per workgroup of 16×16 invocations, 8×8 outputs each (4 shared-memory
// vec4 reads per 64 FMAs instead of 2 per 16), K in half-blocks of 16 so the two staging tiles fit in 16 KiB.
// Each invocation keeps two weight words (rows r and r + 64) across a block's two halves.
const TK = 16u;
const AS_ROW = 32u; // vec4s per k in As: 128 rows / 4
var<workgroup> As: array<vec4<f32>, 512>; // [16 k][128 rows / 4]
var<workgroup> Bs: array<vec4<f32>, 512>; // [16 k][128 cols / 4]
#else
const TILE = 64u;
const TK = 32u;
const AS_ROW = 16u; // vec4s per k in As: 64 rows / 4
// [TK][TILE] as vec4 along the tile: As[kk * 16 + r/4] holds rows r..r+3 at k = kk.
var<workgroup> As: array<vec4<f32>, 512>;
var<workgroup> Bs: array<vec4<f32>, 512>;

#endif

// Stages A[row0 .., k0 .. k0 + TK) into As (0 past M and K): TK · 4·AS_ROW = 2048 values, 8 per invocation,
// consecutive invocations along k (coalesced); As[kk · AS_ROW + r/4] holds rows r..r+3 at k0 + kk.
fn stage_a(li: u32, row0: u32, k0: u32) {
  for (var t = 0u; t < 8u; t++) {
    let idx = li + t * 256u;
    let r = idx / TK;
    let kk = idx % TK;
    var v = 0.0;
    if (row0 + r < p.M && k0 + kk < p.K) { v = a[(row0 + r) * p.K + k0 + kk]; }
    As[kk * AS_ROW + r / 4u][r % 4u] = v;
  }
}

fn scale_of(n: u32, b: u32) -> f32 {
  let g = b / BLOCKS_PER_GROUP;
  if (SCALE_F16) {
    let pair = unpack2x16float(scales[n * p.scale_stride + (g >> 1u)]);
    return select(pair.x, pair.y, (g & 1u) == 1u);
  }
  return bitcast<f32>(scales[n * p.scale_stride + g]);
}

#if WIDE
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * 128u;
  let col0 = wg.x * 128u;
  let wr = li / 4u; // tile rows wr and wr + 64 of W, word wj of each block
  let wj = li % 4u;
  var acc: array<vec4<f32>, 16>;
  for (var b = 0u; b < p.blocks; b++) {
    var words = vec2<u32>(0x88888888u); // q = 0 for rows past N
    var sc = vec2<f32>(0.0);
    for (var h = 0u; h < 2u; h++) {
      let n = col0 + wr + 64u * h;
      if (n < p.N) {
        words[h] = wq[(n * p.blocks + b) * 4u + wj];
        sc[h] = scale_of(n, b);
      }
    }
    for (var half = 0u; half < 2u; half++) {
      let k0 = b * 32u + half * TK;
      stage_a(li, row0, k0); // 128 rows × 16 k
      // W tile: nibbles 4·half + i of each word are elements 4i + wj of this half-block.
      for (var h = 0u; h < 2u; h++) {
        let r = wr + 64u * h;
        for (var i = 0u; i < 4u; i++) {
          let q = f32((words[h] >> (4u * (4u * half + i))) & 0xFu) - 8.0;
          Bs[(4u * i + wj) * 32u + r / 4u][r % 4u] = q * sc[h];
        }
      }
      workgroupBarrier();
      for (var kk = 0u; kk < TK; kk++) {
        let a0 = As[kk * 32u + lid.y];
        let a1 = As[kk * 32u + 16u + lid.y];
        let b0 = Bs[kk * 32u + lid.x];
        let b1 = Bs[kk * 32u + 16u + lid.x];
        for (var i = 0u; i < 4u; i++) {
          acc[2u * i] = fma(vec4<f32>(a0[i]), b0, acc[2u * i]);
          acc[2u * i + 1u] = fma(vec4<f32>(a0[i]), b1, acc[2u * i + 1u]);
          acc[8u + 2u * i] = fma(vec4<f32>(a1[i]), b0, acc[8u + 2u * i]);
          acc[9u + 2u * i] = fma(vec4<f32>(a1[i]), b1, acc[9u + 2u * i]);
        }
      }
      workgroupBarrier();
    }
  }
  // Rows row0 + 64·hr + 4·lid.y + i, columns col0 + 64·hc + 4·lid.x + j.
  for (var hr = 0u; hr < 2u; hr++) {
    for (var i = 0u; i < 4u; i++) {
      let r = row0 + 64u * hr + lid.y * 4u + i;
      if (r >= p.M) { break; }
      for (var hc = 0u; hc < 2u; hc++) {
        for (var j = 0u; j < 4u; j++) {
          let col = col0 + 64u * hc + lid.x * 4u + j;
          if (col < p.N) {
            var v = acc[8u * hr + 2u * i + hc][j];
            if (p.has_bias != 0u) { v += bias[col]; }
            c[r * p.N + col] = v;
          }
        }
      }
    }
  }
}
#else
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  // W tile: invocation li handles word j = li % 4 of tile row r = li / 4 (4 words = one block per row).
  let wr = li / 4u;
  let wj = li % 4u;
  let wn = col0 + wr;
  var acc: array<vec4<f32>, 4>;
  for (var b = 0u; b < p.blocks; b++) {
    let k0 = b * TK;
    stage_a(li, row0, k0); // 64 rows × 32 k
    // W tile: word wj of block b of row wn → elements 4i + wj, i = 0..7, scaled.
    var word = 0x88888888u; // q = 0 for rows past N
    var s = 0.0;
    if (wn < p.N) {
      word = wq[(wn * p.blocks + b) * 4u + wj];
      s = scale_of(wn, b);
    }
    for (var i = 0u; i < 8u; i++) {
      let q = f32((word >> (4u * i)) & 0xFu) - 8.0;
      Bs[(4u * i + wj) * 16u + wr / 4u][wr % 4u] = q * s;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let av = As[kk * 16u + lid.y];
      let bv = Bs[kk * 16u + lid.x];
      acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
      acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
      acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
      acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col < p.N) {
        var v = acc[i][j];
        if (p.has_bias != 0u) { v += bias[col]; }
        c[r * p.N + col] = v;
      }
    }
  }
}
#endif
