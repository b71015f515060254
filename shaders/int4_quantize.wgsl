// GPU int4 quantizer: W[N, K] (f32, or raw bf16 pairs when BF16) → the int4 format of src/kernels/int4.ts
// (nibble u = q + 8; row n, block b = 4 words; word j's nibble i = element 32b + 4i + j; tail padded with
// u = 8). 'symmetric' range: scale = absmax / 7, q = round-half-away(w / scale) clamped to −7..7.
// One invocation per (row, pair of scale groups): a pair shares one f16 scale word, so no two invocations
// write the same word. With f16 scales q is computed for the rounded (stored) scale, as on the CPU.
// Not bit-identical to the CPU quantizer: WGSL f32 division is not correctly rounded, so a q on a .5
// boundary may differ by one step (the result is still a valid quantization of W).
#if BF16
// Raw little-endian bf16: element e is the high half of an f32, in half (e & 1) of word e / 2.
@group(0) @binding(0) var<storage, read> w: array<u32>;
fn wval(e: u32) -> f32 { return bitcast<f32>(((w[e >> 1u] >> (16u * (e & 1u))) & 0xFFFFu) << 16u); }
#else
@group(0) @binding(0) var<storage, read> w: array<f32>;
fn wval(e: u32) -> f32 { return w[e]; }
#endif

struct Params {
  N: u32,
  K: u32,
  blocks: u32,
  groups: u32,
  scale_stride: u32,
  pairs: u32,  // ⌈groups / 2⌉
}

@group(0) @binding(1) var<storage, read_write> packed: array<u32>;
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

override GROUP: u32 = 32u;
override SCALE_F16: bool = false;

// Quantizes group g of row n with scale s (0 → all q = 0), writing its blocks' nibble words.
fn write_group(n: u32, g: u32, s: f32) {
  let inv = select(0.0, 1.0 / s, s != 0.0);
  let b0 = g * (GROUP / 32u);
  let b1 = min(b0 + GROUP / 32u, p.blocks);
  for (var b = b0; b < b1; b++) {
    for (var j = 0u; j < 4u; j++) {
      var word = 0u;
      for (var i = 0u; i < 8u; i++) {
        let k = b * 32u + 4u * i + j;
        var q = 0.0;
        if (k < p.K) {
          let v = wval(n * p.K + k) * inv;
          q = clamp(sign(v) * floor(abs(v) + 0.5), -7.0, 7.0);
        }
        word |= u32(i32(q) + 8) << (4u * i);
      }
      packed[(n * p.blocks + b) * 4u + j] = word;
    }
  }
}

// The f16 value nearest to x ≥ 0 (ties to even), as an f32; inputs past f16's range are the CPU's to refuse.
fn round_to_f16(x: f32) -> f32 {
  if (x < 6.103515625e-05) { return round(x * 16777216.0) / 16777216.0; } // subnormal: multiples of 2^-24
  let b = bitcast<u32>(x);
  return bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u); // keep 10 mantissa bits, nearest-even
}

fn absmax(n: u32, g: u32) -> f32 {
  var m = 0.0;
  for (var k = g * GROUP; k < min((g + 1u) * GROUP, p.K); k++) { m = max(m, abs(wval(n * p.K + k))); }
  return m;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= p.N * p.pairs) { return; }
  let n = t / p.pairs;
  let g0 = (t % p.pairs) * 2u;
  let has1 = g0 + 1u < p.groups;
  var s0 = absmax(n, g0) / 7.0;
  var s1 = select(0.0, absmax(n, g0 + 1u) / 7.0, has1);
  if (SCALE_F16) {
    // Round to f16 by hand, then store: exactly representable values convert exactly. unpack(pack(s)) would be
    // shorter, but NVIDIA's compiler folds it to s, and q then no longer matches the stored scale.
    s0 = round_to_f16(s0);
    s1 = round_to_f16(s1);
    scales[n * p.scale_stride + g0 / 2u] = pack2x16float(vec2<f32>(s0, s1));
  } else {
    scales[n * p.scale_stride + g0] = bitcast<u32>(s0);
    if (has1) { scales[n * p.scale_stride + g0 + 1u] = bitcast<u32>(s1); }
  }
  write_group(n, g0, s0);
  if (has1) { write_group(n, g0 + 1u, s1); }
}
