/**
 * Element-wise f32 ops (shaders/elementwise.wgsl): GELU (tanh and exact erf forms), SiLU(gate)·up (two buffers or
 * one fused [rows, 2·I] gate|up buffer), residual add (optionally a + α·b, or a + b·g per column), bias add, scale,
 * strided 2-D copy.
 * Ops with an optional `out` run in place when it is absent (or is the very same binding as the input).
 * WebGPU forbids binding one buffer both read-only and writable in a dispatch, so an output that shares a
 * buffer with an input at a different range is an `InvalidArgument`, caught here before recording.
 */
import source from '../../shaders/elementwise.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';

const WG = 256;

export function bufferOf(b: Binding): GPUBuffer {
  return 'buffer' in b ? b.buffer : b;
}

/** [byte offset, byte size] a binding covers. */
export function rangeOf(b: Binding): [number, number] {
  if ('buffer' in b) {
    const off = b.offset ?? 0;
    return [off, b.size ?? b.buffer.size - off];
  }
  return [0, b.size];
}

/** True when two bindings name exactly the same bytes of the same buffer. */
export function sameBinding(a: Binding, b: Binding): boolean {
  if (bufferOf(a) !== bufferOf(b)) return false;
  const [ao, as] = rangeOf(a), [bo, bs] = rangeOf(b);
  return ao === bo && as === bs;
}

/** Throws `InvalidArgument` when `out` shares a buffer with an input (WebGPU rejects read + write of one buffer). */
export function requireDistinct(kernel: string, out: Binding, inputs: Record<string, Binding | undefined>): void {
  for (const [name, b] of Object.entries(inputs)) {
    if (b && bufferOf(b) === bufferOf(out)) {
      throw new WebVLMError('InvalidArgument', `${kernel}: the output shares a GPUBuffer with input ${name}; pass a distinct buffer.`, {
        details: { kernel, input: name },
      });
    }
  }
}

function params(rec: Recorder, v: { n: number; cols?: number; alpha?: number; srcStride?: number; dstStride?: number; srcOff?: number; dstOff?: number }) {
  const buf = new ArrayBuffer(32);
  const u = new Uint32Array(buf);
  u[0] = v.n;
  u[1] = v.cols ?? 1;
  new Float32Array(buf)[2] = v.alpha ?? 1;
  u[3] = v.srcStride ?? 0;
  u[4] = v.dstStride ?? 0;
  u[5] = v.srcOff ?? 0;
  u[6] = v.dstOff ?? 0;
  return rec.uniform(buf);
}

function run(gpu: GpuContext, rec: Recorder, entryPoint: string, bindings: Binding[], n: number, label: string, p: Parameters<typeof params>[1]) {
  const pipeline = gpu.pipelines.get({ name: 'elementwise', source, entryPoint });
  rec.dispatch(pipeline, [...bindings, params(rec, p)], grid(gpu, ceilDiv(n, WG)), label);
}

/** Total element count, validated. */
function count(kernel: string, n: number): number {
  requireDims(kernel, { n });
  return n;
}

export interface GeluArgs {
  x: Binding;
  /** Absent (or the same binding as x): in place. */
  out?: Binding;
  n: number;
}

/** y = gelu(x, approximate='tanh') (HF `gelu_pytorch_tanh`). */
export function geluTanh(gpu: GpuContext, rec: Recorder, args: GeluArgs): void {
  const n = count('geluTanh', args.n);
  requireBytes('geluTanh', 'x', args.x, n * 4);
  if (!args.out || sameBinding(args.out, args.x)) return run(gpu, rec, 'gelu_tanh_inplace', [args.x], n, `gelu_tanh/inplace ${n}`, { n });
  requireBytes('geluTanh', 'out', args.out, n * 4);
  requireDistinct('geluTanh', args.out, { x: args.x });
  run(gpu, rec, 'gelu_tanh', [args.x, args.out], n, `gelu_tanh ${n}`, { n });
}

/** y = gelu(x) in its exact form x·Φ(x) (HF `gelu`, torch's default `approximate='none'`: InternViT, CLIP). */
export function gelu(gpu: GpuContext, rec: Recorder, args: GeluArgs): void {
  const n = count('gelu', args.n);
  requireBytes('gelu', 'x', args.x, n * 4);
  if (!args.out || sameBinding(args.out, args.x)) return run(gpu, rec, 'gelu_inplace', [args.x], n, `gelu/inplace ${n}`, { n });
  requireBytes('gelu', 'out', args.out, n * 4);
  requireDistinct('gelu', args.out, { x: args.x });
  run(gpu, rec, 'gelu', [args.x, args.out], n, `gelu ${n}`, { n });
}

export type SiluMulArgs = {
  out: Binding;
  rows: number;
  /** Intermediate size: out is [rows, I]. */
  I: number;
} & (
  | { gate: Binding; up: Binding; gateUp?: undefined }
  /** Fused gate/up projection output [rows, 2·I]: row r is gate[r, 0..I) then up[r, 0..I). */
  | { gateUp: Binding; gate?: undefined; up?: undefined }
);

/** out[r, j] = silu(gate[r, j]) · up[r, j] (the Llama MLP's act_fn(gate_proj(x)) * up_proj(x)). */
export function siluMul(gpu: GpuContext, rec: Recorder, args: SiluMulArgs): void {
  const { rows, I } = args;
  requireDims('siluMul', { rows, I });
  const n = rows * I;
  requireBytes('siluMul', 'out', args.out, n * 4);
  if (args.gateUp) {
    requireBytes('siluMul', 'gateUp', args.gateUp, 2 * n * 4);
    requireDistinct('siluMul', args.out, { gateUp: args.gateUp });
    return run(gpu, rec, 'silu_mul_fused', [args.gateUp, args.out], n, `silu_mul/fused ${rows}x${I}`, { n, cols: I });
  }
  if (!args.gate || !args.up) throw new WebVLMError('InvalidArgument', 'siluMul: pass either gate and up, or gateUp.');
  requireBytes('siluMul', 'gate', args.gate, n * 4);
  requireBytes('siluMul', 'up', args.up, n * 4);
  requireDistinct('siluMul', args.out, { gate: args.gate, up: args.up });
  run(gpu, rec, 'silu_mul', [args.gate, args.up, args.out], n, `silu_mul ${rows}x${I}`, { n });
}

export interface AddArgs {
  a: Binding;
  b: Binding;
  /** Absent (or the same binding as a): a += b (the residual update). */
  out?: Binding;
  n: number;
  /** out = a + α·b (α rounded to f32; default 1, which gives the plain sum's bits): Granite's residual_multiplier. */
  alpha?: number;
  /** a += b ⊙ colScale, colScale [cols] repeating over rows of `cols` (in place only, α = 1): a layer-scaled branch. */
  colScale?: Binding;
  cols?: number;
}

/** out = a + α·b, or a += α·b in place; with `colScale`, a[r, c] += b[r, c] · colScale[c] in place. */
export function add(gpu: GpuContext, rec: Recorder, args: AddArgs): void {
  const n = count('add', args.n);
  const alpha = args.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new WebVLMError('InvalidArgument', `add: alpha must be finite, got ${alpha}.`);
  requireBytes('add', 'a', args.a, n * 4);
  requireBytes('add', 'b', args.b, n * 4);
  let { a, b } = args;
  const out = args.out;
  if (args.colScale) {
    const cols = args.cols ?? 0;
    requireDims('add', { cols });
    if (n % cols) throw new WebVLMError('ShapeMismatch', `add: n = ${n} is not a whole number of rows of ${cols}.`);
    if (alpha !== 1 || (out && !sameBinding(out, a))) throw new WebVLMError('InvalidArgument', 'add: colScale is in place (out = a) and takes no alpha.');
    requireBytes('add', 'colScale', args.colScale, cols * 4);
    requireDistinct('add', a, { b, colScale: args.colScale });
    return run(gpu, rec, 'add_cols_inplace', [a, b, args.colScale], n, `add/cols ${n / cols}x${cols}`, { n, cols });
  }
  // b += a gives the same bits as a + b (IEEE addition commutes), so out == b is in place too; not so with α ≠ 1.
  if (out && !sameBinding(out, a) && sameBinding(out, b)) {
    if (alpha !== 1) throw new WebVLMError('InvalidArgument', 'add: out = b with alpha ≠ 1 is not supported; pass out = a or a distinct buffer.');
    [a, b] = [b, a];
  }
  if (!out || sameBinding(out, a)) {
    requireDistinct('add', a, { b });
    return run(gpu, rec, 'add_inplace', [a, b], n, `add/inplace ${n}`, { n, alpha });
  }
  requireBytes('add', 'out', out, n * 4);
  requireDistinct('add', out, { a, b });
  run(gpu, rec, 'add', [a, b, out], n, `add ${n}`, { n, alpha });
}

export interface BiasAddArgs {
  x: Binding;
  bias: Binding;
  rows: number;
  N: number;
}

/** x[r, n] += bias[n], in place. */
export function biasAdd(gpu: GpuContext, rec: Recorder, args: BiasAddArgs): void {
  const { rows, N } = args;
  requireDims('biasAdd', { rows, N });
  requireBytes('biasAdd', 'x', args.x, rows * N * 4);
  requireBytes('biasAdd', 'bias', args.bias, N * 4);
  requireDistinct('biasAdd', args.x, { bias: args.bias });
  run(gpu, rec, 'bias_add', [args.x, args.bias], rows * N, `bias_add ${rows}x${N}`, { n: rows * N, cols: N });
}

export interface ScaleArgs {
  x: Binding;
  out?: Binding;
  n: number;
  alpha: number;
}

/** out = α · x (α rounded to f32), or x *= α in place. */
export function scale(gpu: GpuContext, rec: Recorder, args: ScaleArgs): void {
  const n = count('scale', args.n);
  if (!Number.isFinite(args.alpha)) throw new WebVLMError('InvalidArgument', `scale: alpha must be finite, got ${args.alpha}.`);
  requireBytes('scale', 'x', args.x, n * 4);
  if (!args.out || sameBinding(args.out, args.x)) return run(gpu, rec, 'scale_inplace', [args.x], n, `scale/inplace ${n}`, { n, alpha: args.alpha });
  requireBytes('scale', 'out', args.out, n * 4);
  requireDistinct('scale', args.out, { x: args.x });
  run(gpu, rec, 'scale', [args.x, args.out], n, `scale ${n}`, { n, alpha: args.alpha });
}

export interface Copy2dArgs {
  src: Binding;
  dst: Binding;
  rows: number;
  cols: number;
  /** Elements between row starts; default cols. */
  srcStride?: number;
  dstStride?: number;
  /** Element offsets of row 0; default 0 (any offset: no 256-byte binding alignment needed). */
  srcOffset?: number;
  dstOffset?: number;
}

/**
 * dst[dstOffset + r·dstStride + c] = src[srcOffset + r·srcStride + c] for a rows × cols block: slicing a
 * fused QKV output, taking the last row's hidden state, placing image features into the sequence.
 */
export function copy2d(gpu: GpuContext, rec: Recorder, args: Copy2dArgs): void {
  const { rows, cols } = args;
  const srcStride = args.srcStride ?? cols, dstStride = args.dstStride ?? cols;
  const srcOffset = args.srcOffset ?? 0, dstOffset = args.dstOffset ?? 0;
  requireDims('copy2d', { rows, cols });
  requireDims('copy2d', { srcStride, dstStride, srcOffset, dstOffset }, { allowZero: true });
  if (srcStride < cols || dstStride < cols) {
    throw new WebVLMError('ShapeMismatch', `copy2d: strides (${srcStride}, ${dstStride}) must be ≥ cols (${cols}).`);
  }
  requireBytes('copy2d', 'src', args.src, (srcOffset + (rows - 1) * srcStride + cols) * 4);
  requireBytes('copy2d', 'dst', args.dst, (dstOffset + (rows - 1) * dstStride + cols) * 4);
  requireDistinct('copy2d', args.dst, { src: args.src });
  const n = rows * cols;
  run(gpu, rec, 'copy2d', [args.src, args.dst], n, `copy2d ${rows}x${cols}`, { n, cols, srcStride, dstStride, srcOff: srcOffset, dstOff: dstOffset });
}
