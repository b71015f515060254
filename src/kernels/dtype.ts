/**
 * Scalar dtype conversions on the CPU (checkpoint loading, quantizers, test references).
 * bf16 and f16 arrive as raw little-endian 16-bit words (safetensors bytes viewed as Uint16Array);
 * `f32ToF16Bits` rounds to nearest-even, as the GPU's `pack2x16float` is expected to.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 is the top half of an f32: widening is a shift, exact for every value (NaN, ±Inf, subnormals). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i] << 16;
  return out;
}

/** One f16 bit pattern → its exact value. */
export function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24; // zero / subnormal
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f16 words → f32 (exact: every f16 is representable in f32). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16BitsToNumber(bits[i]);
  return out;
}

/** One number → the f16 bit pattern nearest to it (ties to even; overflow → ±Inf; NaN → quiet NaN). */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  // Unbiased exponent; f16 normals cover [-14, 15].
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal: keep 10 mantissa bits, round the 13 dropped ones to nearest-even (a carry may bump the exponent, even to Inf).
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
    return sign | h;
  }
  if (e < -25) return sign; // below half the smallest subnormal: ±0
  // Subnormal: value = m · 2^-24 with the implicit leading 1 made explicit.
  const full = mant | 0x800000;
  const shift = -e - 1; // 14..24 bits to drop from the 24-bit significand to land on 2^-24 units
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1))) h++;
  return sign | h;
}

/** f32 values → f16 words (round to nearest-even). */
export function f32ToF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

/** Rounds a number to the nearest f16 value (what storing it as f16 and reading it back gives). */
export function roundToF16(value: number): number {
  return f16BitsToNumber(f32ToF16Bits(value));
}
