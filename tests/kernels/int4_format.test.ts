/** int4 format (pure TS): quantize/dequantize round trip, nibble order, padding, scales, concat, ORT layout, dtypes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16BitsToNumber, f16ToF32, f32ToF16Bits } from '../../src/kernels/dtype.ts';
import { concatInt4Rows, dequantizeInt4, dequantizeInt4F64, int4Q, int4Scale, quantizeInt4, toMatMulNBits, type Int4Group, type Int4ScaleType } from '../../src/kernels/int4.ts';
import { randomF32 } from '../harness/check.ts';

test('f32ToF16Bits: exact values, rounding to nearest-even, subnormals, overflow, NaN', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -10, 0x3c01], [0.1, 0x2e66], [1 / 3, 0x3555],
  ];
  for (const [v, bits] of cases) assert.equal(f32ToF16Bits(v), bits, `f32ToF16Bits(${v})`);
  assert.ok(Number.isNaN(f16BitsToNumber(f32ToF16Bits(NaN))));
  // Every f16 survives f16 → number → f16.
  for (let h = 0; h < 0x10000; h++) {
    if (((h >> 10) & 0x1f) === 31 && h & 0x3ff) continue; // NaNs
    assert.equal(f32ToF16Bits(f16BitsToNumber(h)), h, `round trip 0x${h.toString(16)}`);
  }
  assert.deepEqual([...f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x0001]))], [1, -2, 2 ** -24]);
});

test('bf16ToF32 widens by a 16-bit shift', () => {
  assert.deepEqual([...bf16ToF32(new Uint16Array([0x3f80, 0xc040, 0x0000, 0x7f80]))], [1, -3, 0, Infinity]);
});

test('nibble order: word j, nibble i holds element 32b + 4i + j; padding is nibble 8', () => {
  // Row of K = 40: block 0 full, block 1 holds 8 real elements. Every group reaches ±7, so scale 1 and q = w.
  const K = 40;
  const f = (k: number) => (k < 32 ? (k % 15) - 7 : [7, -7, 3, -3, 0, 1, -1, 5][k - 32]);
  const w = new Float32Array(K);
  for (let k = 0; k < K; k++) w[k] = f(k);
  const m = quantizeInt4(w, 1, K, { group: 32, scaleType: 'f32' });
  assert.equal(m.blocks, 2);
  assert.equal(m.packed.length, 8);
  for (let k = 0; k < 32; k++) {
    const i = (k % 32) >> 2, j = k & 3;
    assert.equal(((m.packed[j] >>> (4 * i)) & 0xf) - 8, f(k), `element ${k}`);
  }
  for (let k = 32; k < 64; k++) {
    const i = (k % 32) >> 2, j = k & 3;
    const expect = k < K ? f(k) : 0;
    assert.equal(((m.packed[4 + j] >>> (4 * i)) & 0xf) - 8, expect, `element ${k}`);
  }
  assert.equal(int4Scale(m, 0, 0), 1);
});

function roundTrip(N: number, K: number, group: Int4Group, scaleType: Int4ScaleType, range: 'symmetric' | 'full') {
  const w = randomF32(N * K, N * 1000 + K + group, 0.5);
  // A row with an outlier and an all-zero group exercise the scale choice.
  if (N > 1) w.fill(0, K, K + Math.min(K, group));
  w[0] = 3;
  const m = quantizeInt4(w, N, K, { group, scaleType, range });
  const d = dequantizeInt4F64(m);
  const qmin = range === 'full' ? -8 : -7;
  for (let n = 0; n < N; n++)
    for (let g = 0; g < m.groups; g++) {
      const s = int4Scale(m, n, g);
      let peak = 0;
      for (let k = g * group; k < Math.min(K, (g + 1) * group); k++) peak = Math.max(peak, Math.abs(w[n * K + k]));
      // Each element is within half a step of its value (plus one step where 'full' clamps at +7).
      for (let k = g * group; k < Math.min(K, (g + 1) * group); k++) {
        const q = int4Q(m, n, k);
        assert.ok(q >= qmin && q <= 7, `q ${q} in range`);
        const err = Math.abs(d[n * K + k] - w[n * K + k]);
        const bound = Math.abs(s) * (range === 'full' ? 1.0001 : 0.5001) + (scaleType === 'f16' ? peak * 2 ** -10 : 1e-7);
        assert.ok(err <= bound, `(${n},${k}) error ${err} > ${bound} (scale ${s})`);
      }
    }
  const f32 = dequantizeInt4(m);
  for (let i = 0; i < d.length; i++) assert.equal(f32[i], Math.fround(d[i]));
  return m;
}

test('quantize → dequantize round trip: ragged K, groups 32/64/128, f32 and f16 scales, both ranges', () => {
  for (const group of [32, 64, 128] as const)
    for (const scaleType of ['f32', 'f16'] as const)
      for (const range of ['symmetric', 'full'] as const)
        for (const [N, K] of [[1, 1], [3, 31], [5, 97], [2, 130], [4, 256]]) {
          const m = roundTrip(N, K, group, scaleType, range);
          assert.equal(m.blocks, Math.ceil(K / 32));
          assert.equal(m.groups, Math.ceil(K / group));
          assert.equal(m.scaleStride, scaleType === 'f16' ? Math.ceil(m.groups / 2) : m.groups);
        }
});

test('symmetric range keeps the largest magnitude exact (f32 scales); zero groups have scale 0', () => {
  const w = new Float32Array([0.7, -1.4, 0.2, 0, ...new Array(28).fill(0.1)]);
  const m = quantizeInt4(w, 1, 32, { scaleType: 'f32' });
  assert.equal(int4Q(m, 0, 1), -7);
  assert.equal(dequantizeInt4(m)[1], Math.fround(-1.4));
  const z = quantizeInt4(new Float32Array(64), 2, 32, { scaleType: 'f16' });
  assert.equal(int4Scale(z, 1, 0), 0);
  assert.ok(dequantizeInt4(z).every((v) => v === 0));
});

test('concatInt4Rows equals quantizing the stacked rows', () => {
  for (const scaleType of ['f32', 'f16'] as const) {
    const K = 100; // 4 blocks, 2 groups of 64: an odd number of f16 scales per row would misalign without padding
    const a = randomF32(3 * K, 1), b = randomF32(5 * K, 2);
    const both = new Float32Array([...a, ...b]);
    const whole = quantizeInt4(both, 8, K, { group: 64, scaleType });
    const cat = concatInt4Rows([quantizeInt4(a, 3, K, { group: 64, scaleType }), quantizeInt4(b, 5, K, { group: 64, scaleType })]);
    assert.equal(cat.N, 8);
    assert.deepEqual(cat.packed, whole.packed);
    assert.deepEqual(cat.scales, whole.scales);
  }
  assert.throws(() => concatInt4Rows([quantizeInt4(new Float32Array(32), 1, 32), quantizeInt4(new Float32Array(64), 1, 64)]), { code: 'ShapeMismatch' });
});

test('toMatMulNBits decodes to the same matrix (ORT formula, low nibble first, zero point 8)', () => {
  for (const group of [32, 64] as const) {
    const N = 3, K = 77;
    const m = quantizeInt4(randomF32(N * K, 9), N, K, { group, scaleType: 'f16' });
    const { B, scales, blockSize } = toMatMulNBits(m);
    const kb = Math.ceil(K / blockSize);
    assert.equal(B.length, N * kb * (blockSize / 2));
    const d = dequantizeInt4F64(m);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const byte = B[(n * kb + Math.floor(k / blockSize)) * (blockSize / 2) + ((k % blockSize) >> 1)];
        const v = (((byte >> (4 * (k & 1))) & 15) - 8) * scales[n * kb + Math.floor(k / blockSize)];
        assert.equal(v, d[n * K + k]);
      }
  }
});

test('bad arguments throw typed errors', () => {
  assert.throws(() => quantizeInt4(new Float32Array(4), 2, 2, { group: 16 as Int4Group }), { code: 'InvalidArgument' });
  assert.throws(() => quantizeInt4(new Float32Array(4), 2, 3), { code: 'ShapeMismatch' });
  assert.throws(() => quantizeInt4(new Float32Array(4), 0, 4), { code: 'ShapeMismatch' });
  assert.throws(() => quantizeInt4(new Float32Array([NaN]), 1, 1), { code: 'InvalidArgument' });
  assert.throws(() => quantizeInt4(new Float32Array([1e6]), 1, 1, { scaleType: 'f16' }), { code: 'InvalidArgument' });
});
