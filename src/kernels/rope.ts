/**
 * Llama RoPE in place on Q [S, heads·hd] and K [S, kvHeads·hd] (shaders/rope.wgsl), HF semantics:
 * rotate_half pairs (i, i + hd/2), inv_freq[i] = 1/θ^(2i/hd) in f32, position = startPos + s, the angle
 * inv_freq·position rounded to f32 as HF's float32 product, cos/sin of it accurate to ~1e-7.
 * Rows may be strided and offset (elements), so q and k can be slices of one fused QKV buffer: pass the
 * same buffer for both with `qOffset`/`kOffset` and `qStride = kStride = (heads + 2·kvHeads)·hd`.
 */
import source from '../../shaders/rope.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { bufferOf, rangeOf } from './elementwise.ts';

/** hd/2 values fit the shader's uniform table. */
export const ROPE_MAX_HEAD_DIM = 256;

/** inv_freq as HF's default `LlamaRotaryEmbedding` computes it in float32. */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = f(1 / f(f(theta) ** f((2 * i) / headDim)));
  return out;
}

export interface RopeArgs {
  q: Binding;
  /** Absent when only q is rotated (kvHeads must then be 0). */
  k?: Binding;
  S: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** rope_theta (base). */
  theta: number;
  /** Position of row 0 (the KV-cache length before this call). */
  startPos: number;
  /** Elements between rows; defaults heads·hd and kvHeads·hd. */
  qStride?: number;
  kStride?: number;
  /** Element offset of row 0. */
  qOffset?: number;
  kOffset?: number;
  /** Overrides the default inv_freq (other rope types: llama3 / linear scaling computed on the host). */
  invFreq?: Float32Array;
}

export function rope(gpu: GpuContext, rec: Recorder, args: RopeArgs): void {
  const { S, heads, kvHeads, headDim, startPos } = args;
  requireDims('rope', { S, heads, headDim });
  requireDims('rope', { kvHeads, startPos }, { allowZero: true });
  if (headDim % 2 || headDim > ROPE_MAX_HEAD_DIM) {
    throw new WebVLMError('ShapeMismatch', `rope: headDim must be even and ≤ ${ROPE_MAX_HEAD_DIM}, got ${headDim}.`);
  }
  if (startPos + S > 2 ** 24) throw new WebVLMError('InvalidArgument', `rope: positions up to ${startPos + S} are not exact in f32 (limit 2^24).`);
  if (!args.invFreq && !(Number.isFinite(args.theta) && args.theta > 0)) throw new WebVLMError('InvalidArgument', `rope: theta must be positive, got ${args.theta}.`);
  if (kvHeads > 0 && !args.k) throw new WebVLMError('InvalidArgument', 'rope: kvHeads > 0 but no k buffer.');
  if (kvHeads === 0 && args.k) throw new WebVLMError('InvalidArgument', 'rope: k given but kvHeads is 0.');
  const qStride = args.qStride ?? heads * headDim, kStride = args.kStride ?? kvHeads * headDim;
  const qOffset = args.qOffset ?? 0, kOffset = args.kOffset ?? 0;
  requireDims('rope', { qStride, kStride, qOffset, kOffset }, { allowZero: true });
  if (qStride < heads * headDim || kStride < kvHeads * headDim) {
    throw new WebVLMError('ShapeMismatch', `rope: row strides (${qStride}, ${kStride}) are shorter than the rows (${heads * headDim}, ${kvHeads * headDim}).`);
  }
  requireBytes('rope', 'q', args.q, (qOffset + (S - 1) * qStride + heads * headDim) * 4);
  if (args.k) requireBytes('rope', 'k', args.k, (kOffset + (S - 1) * kStride + kvHeads * headDim) * 4);
  const invFreq = args.invFreq ?? ropeInvFreq(headDim, args.theta);
  if (invFreq.length !== headDim / 2) throw new WebVLMError('ShapeMismatch', `rope: invFreq has ${invFreq.length} values, expected ${headDim / 2}.`);

  // q and k in one buffer (fused QKV, or q alone): bind the whole buffer once, address both by element offsets.
  const shared = !args.k || bufferOf(args.k) === bufferOf(args.q);
  let qo = qOffset, ko = kOffset;
  if (shared) {
    const qb = rangeOf(args.q)[0], kb = args.k ? rangeOf(args.k)[0] : 0;
    if (qb % 4 || kb % 4) throw new WebVLMError('InvalidArgument', 'rope: binding byte offsets must be multiples of 4.');
    qo += qb / 4;
    ko += kb / 4;
  }
  const buf = new ArrayBuffer(48 + 512);
  new Uint32Array(buf, 0, 12).set([S, heads, kvHeads, headDim / 2, qStride, kStride, qo, ko, startPos]);
  new Float32Array(buf, 48, 128).set(invFreq);
  const pipeline = gpu.pipelines.get({ name: 'rope', source, defines: { SHARED: shared } });
  const pairs = S * (heads + kvHeads) * (headDim / 2);
  const bindings = shared ? [bufferOf(args.q), rec.uniform(buf)] : [args.q, args.k!, rec.uniform(buf)];
  rec.dispatch(pipeline, bindings, grid(gpu, ceilDiv(pairs, 256)), `rope${shared ? '/shared' : ''} ${S}x(${heads}+${kvHeads})x${headDim} @${startPos}`);
}
