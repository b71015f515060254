/**
 * webvlm's int4 weight format, its CPU quantizer and the dequantizing reference.
 *
 * ## Format (weights in nn.Linear layout W[N, K]; every row n is quantized on its own)
 * - Values: symmetric int4, no zero point. The stored nibble u ∈ 0..15 means q = u − 8, so decoding
 *   covers −8..7. The quantizer's default range `'symmetric'` uses only −7..7 (scale = absmax / 7: the
 *   largest |w| is exact, the grid is sign-symmetric); `'full'` also uses −8 (scale = w_max / −8, with w_max
 *   the signed element of largest magnitude; a finer grid, values of the other sign clamp at +7).
 *   Dequantized value: w[n, k] = q[n, k] · scale[n, ⌊k / group⌋], computed in f32.
 * - Groups: `group` ∈ {32, 64, 128} consecutive elements along K share one scale. K need not be a multiple
 *   of anything: the tail is padded with q = 0 (nibble 8) to whole blocks of 32; the last group's scale
 *   comes from the real elements only. `blocks = ⌈K/32⌉`, `groups = ⌈K/group⌉`.
 * - Nibbles (`packed`, Uint32Array, 16-byte aligned): row n, block b (32 elements) is 4 consecutive u32
 *   words at `(n·blocks + b)·4`; word j's nibble i (bits 4i..4i+3) holds element k = 32b + 4i + j.
 *   So `(vec4<u32>(w0,w1,w2,w3) >> vec4(4u·i)) & vec4(0xFu)` is the vec4 of elements 32b+4i .. 32b+4i+3:
 *   one shift and one mask per four weights, and a block is one 16-byte load (`array<vec4<u32>>`).
 *   The nibble layout does not depend on `group`; only the scale index does (block b → group ⌊32b/group⌋).
 * - Scales (`scales`): `scaleType 'f32'`: Float32Array [N, groups]. `'f16'`: Uint32Array of f16 pairs,
 *   each row padded to an even count, `scaleStride = ⌈groups/2⌉` words per row; group g of row n is half
 *   `g & 1` (low half first) of word `n·scaleStride + ⌊g/2⌋`, read in WGSL with `unpack2x16float`, so no
 *   shader-f16 feature is needed. f16 scales are rounded before quantizing, so q is chosen for the scale
 *   that is actually stored.
 * - Rows are independent and every per-row array is contiguous and whole-word: concatenating the rows of
 *   several matrices with the same K / group / scaleType (Q, K and V projections; gate and up) is plain
 *   array concatenation (`concatInt4Rows`), and one GEMV then serves them all.
 * Bits per weight: 4 + 32/group (f32 scales) or 4 + 16/group (f16): 5.0 / 4.5 at group 32.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Arena } from '../gpu/buffers.ts';
import type { Binding } from '../gpu/recorder.ts';
import { upload } from '../gpu/io.ts';
import { f16BitsToNumber, f32ToF16Bits } from './dtype.ts';
import { requireBytes, requireDims } from './common.ts';

export type Int4Group = 32 | 64 | 128;
export type Int4ScaleType = 'f32' | 'f16';
export type Int4Range = 'symmetric' | 'full';

export interface Int4Shape {
  N: number;
  K: number;
  group: Int4Group;
  scaleType: Int4ScaleType;
}

export interface Int4Matrix extends Int4Shape {
  /** ⌈K/32⌉: 16-byte blocks per row. */
  blocks: number;
  /** ⌈K/group⌉: scales per row. */
  groups: number;
  /** Scale words (u32) per row: `groups` for f32, ⌈groups/2⌉ for f16. */
  scaleStride: number;
  packed: Uint32Array;
  /** Float32Array for 'f32', Uint32Array of f16 pairs for 'f16'. */
  scales: Float32Array | Uint32Array;
}

/** The same matrix as GPU buffers (what the int4 kernels take). */
export interface Int4GpuWeights extends Int4Shape {
  packed: Binding;
  scales: Binding;
}

export const INT4_BLOCK = 32;
const GROUPS: readonly number[] = [32, 64, 128];

export function int4Layout(shape: Int4Shape): { blocks: number; groups: number; scaleStride: number; packedWords: number; scaleWords: number } {
  const blocks = Math.ceil(shape.K / INT4_BLOCK);
  const groups = Math.ceil(shape.K / shape.group);
  const scaleStride = shape.scaleType === 'f16' ? Math.ceil(groups / 2) : groups;
  return { blocks, groups, scaleStride, packedWords: shape.N * blocks * 4, scaleWords: shape.N * scaleStride };
}

/** Throws a typed error unless `shape` describes a valid int4 matrix. */
export function checkInt4Shape(kernel: string, shape: Int4Shape): void {
  requireDims(kernel, { N: shape.N, K: shape.K });
  if (!GROUPS.includes(shape.group)) throw new WebVLMError('InvalidArgument', `${kernel}: group must be 32, 64 or 128, got ${shape.group}.`);
  if (shape.scaleType !== 'f32' && shape.scaleType !== 'f16') {
    throw new WebVLMError('InvalidArgument', `${kernel}: scaleType must be 'f32' or 'f16', got ${String(shape.scaleType)}.`);
  }
}

/** Checks the GPU buffers of `w` are large enough for its shape. */
export function checkInt4Weights(kernel: string, w: Int4GpuWeights): ReturnType<typeof int4Layout> {
  checkInt4Shape(kernel, w);
  const l = int4Layout(w);
  requireBytes(kernel, 'packed', w.packed, l.packedWords * 4);
  requireBytes(kernel, 'scales', w.scales, l.scaleWords * 4);
  return l;
}

/** Rounds half away from zero, so the grid is sign-symmetric. */
const roundAway = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

/** Quantizes W[N, K] (row-major f32) to the int4 format above. */
export function quantizeInt4(w: Float32Array, N: number, K: number, opts: { group?: Int4Group; scaleType?: Int4ScaleType; range?: Int4Range } = {}): Int4Matrix {
  const shape: Int4Shape = { N, K, group: opts.group ?? 32, scaleType: opts.scaleType ?? 'f16' };
  checkInt4Shape('quantizeInt4', shape);
  if (w.length < N * K) throw new WebVLMError('ShapeMismatch', `quantizeInt4: ${w.length} values, but N·K = ${N * K}.`);
  const range = opts.range ?? 'symmetric';
  const { blocks, groups, scaleStride, packedWords, scaleWords } = int4Layout(shape);
  const packed = new Uint32Array(packedWords).fill(0x88888888); // nibble 8 = q 0: padding decodes to 0
  const f32Scales = shape.scaleType === 'f32' ? new Float32Array(scaleWords) : null;
  const f16Scales = shape.scaleType === 'f16' ? new Uint32Array(scaleWords) : null;
  const { group } = shape;
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let g = 0; g < groups; g++) {
      const k0 = g * group, k1 = Math.min(k0 + group, K);
      let peak = 0; // signed value of largest magnitude
      for (let k = k0; k < k1; k++) {
        const v = w[row + k];
        if (!Number.isFinite(v)) throw new WebVLMError('InvalidArgument', `quantizeInt4: W[${n}, ${k}] = ${v} is not finite.`);
        if (Math.abs(v) > Math.abs(peak)) peak = v;
      }
      let scale = range === 'full' ? peak / -8 : Math.abs(peak) / 7;
      if (f16Scales) {
        const bits = f32ToF16Bits(scale);
        if (!Number.isFinite(f16BitsToNumber(bits))) throw new WebVLMError('InvalidArgument', `quantizeInt4: row ${n} group ${g}: scale ${scale} overflows f16.`);
        scale = f16BitsToNumber(bits);
        f16Scales[n * scaleStride + (g >> 1)] |= bits << (16 * (g & 1));
      } else {
        scale = Math.fround(scale);
        f32Scales![n * groups + g] = scale;
      }
      const inv = scale === 0 ? 0 : 1 / scale;
      const qmin = range === 'full' ? -8 : -7;
      for (let k = k0; k < k1; k++) {
        const q = Math.min(7, Math.max(qmin, roundAway(w[row + k] * inv)));
        const kk = k % INT4_BLOCK; // = 4i + j
        const word = (n * blocks + Math.floor(k / INT4_BLOCK)) * 4 + (kk & 3);
        const shift = 4 * (kk >> 2);
        packed[word] = (packed[word] & ~(0xf << shift)) | ((q + 8) << shift);
      }
    }
  }
  return { ...shape, blocks, groups, scaleStride, packed, scales: (f32Scales ?? f16Scales)! };
}

/** The stored q (−8..7) of element (n, k). */
export function int4Q(m: Int4Matrix, n: number, k: number): number {
  const kk = k % INT4_BLOCK;
  const word = m.packed[(n * m.blocks + Math.floor(k / INT4_BLOCK)) * 4 + (kk & 3)];
  return ((word >>> (4 * (kk >> 2))) & 0xf) - 8;
}

/** The scale of group g in row n, as the kernels read it (exact f32 value). */
export function int4Scale(m: Int4Matrix, n: number, g: number): number {
  if (m.scaleType === 'f32') return (m.scales as Float32Array)[n * m.groups + g];
  const word = (m.scales as Uint32Array)[n * m.scaleStride + (g >> 1)];
  return f16BitsToNumber((word >>> (16 * (g & 1))) & 0xffff);
}

/** Dequantized W[N, K] in f64: q · scale exactly (the kernel tests' reference). */
export function dequantizeInt4F64(m: Int4Matrix): Float64Array {
  const out = new Float64Array(m.N * m.K);
  for (let n = 0; n < m.N; n++)
    for (let g = 0; g < m.groups; g++) {
      const s = int4Scale(m, n, g);
      for (let k = g * m.group; k < Math.min((g + 1) * m.group, m.K); k++) out[n * m.K + k] = int4Q(m, n, k) * s;
    }
  return out;
}

/** Dequantized W[N, K] as f32 (each value q · scale rounded once). */
export function dequantizeInt4(m: Int4Matrix): Float32Array {
  return Float32Array.from(dequantizeInt4F64(m));
}

/** Stacks the rows of matrices with equal K / group / scaleType (fused QKV or gate+up GEMV). */
export function concatInt4Rows(parts: Int4Matrix[]): Int4Matrix {
  if (!parts.length) throw new WebVLMError('InvalidArgument', 'concatInt4Rows: nothing to concatenate.');
  const [a] = parts;
  for (const p of parts) {
    if (p.K !== a.K || p.group !== a.group || p.scaleType !== a.scaleType) {
      throw new WebVLMError('ShapeMismatch', `concatInt4Rows: K/group/scaleType differ (${p.K}/${p.group}/${p.scaleType} vs ${a.K}/${a.group}/${a.scaleType}).`);
    }
  }
  const N = parts.reduce((s, p) => s + p.N, 0);
  const packed = new Uint32Array(parts.reduce((s, p) => s + p.packed.length, 0));
  const scales = a.scaleType === 'f32' ? new Float32Array(N * a.scaleStride) : new Uint32Array(N * a.scaleStride);
  let po = 0, so = 0;
  for (const p of parts) {
    packed.set(p.packed, po);
    scales.set(p.scales as never, so);
    po += p.packed.length;
    so += p.scales.length;
  }
  return { ...a, N, packed, scales };
}

/**
 * The same quantized weights in onnxruntime's `com.microsoft.MatMulNBits` layout (bits 4,
 * block_size = group, zero point 8 = its default): B uint8 [N, groups, group/2] with the low nibble
 * first, scales f32 [N, groups]. Our nibble u = q + 8 is exactly its stored value, so this is a re-shuffle.
 */
export function toMatMulNBits(m: Int4Matrix): { B: Uint8Array; scales: Float32Array; blockSize: number } {
  const half = m.group / 2;
  const B = new Uint8Array(m.N * m.groups * half).fill(0x88);
  const scales = new Float32Array(m.N * m.groups);
  for (let n = 0; n < m.N; n++)
    for (let g = 0; g < m.groups; g++) {
      scales[n * m.groups + g] = int4Scale(m, n, g);
      for (let e = 0; e < m.group; e++) {
        const k = g * m.group + e;
        const u = k < m.K ? int4Q(m, n, k) + 8 : 8;
        const i = (n * m.groups + g) * half + (e >> 1);
        B[i] = e & 1 ? (B[i] & 0x0f) | (u << 4) : (B[i] & 0xf0) | u;
      }
    }
  return { B, scales, blockSize: m.group };
}

/** Uploads a quantized matrix (into `arena` when given, so it dies with the model's weights). */
export function uploadInt4(gpu: GpuContext, m: Int4Matrix, arena?: Arena, label = 'int4'): Int4GpuWeights {
  const put = (data: Uint32Array | Float32Array, what: string) => {
    if (!arena) return upload(gpu, data, `${label}/${what}`);
    const b = arena.buffer(data.byteLength, undefined, `${label}/${what}`);
    gpu.device.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
    return b;
  };
  return { N: m.N, K: m.K, group: m.group, scaleType: m.scaleType, packed: put(m.packed, 'packed'), scales: put(m.scales, 'scales') };
}
