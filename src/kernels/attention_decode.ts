/**
 * Decode attention (flash-decoding) binding. Shaders: shaders/attention_decode.wgsl (+ attention_merge.wgsl).
 *
 * Layouts (f32, element offsets/strides multiples of 4):
 *  - Q  `[tokens, heads·headDim]` (row stride `qStride`; 1 ≤ tokens ≤ 4), the q projection's output.
 *  - K,V the KV cache `[kvHeads, capacity, headDim]` (kv_cache.ts; default) or the tokens layout
 *       `[keys, kvHeads·headDim]`. Keys 0..kvLen-1 are read; the new tokens' rows must already be in.
 *  - O  `[tokens, heads·headDim]`, dense.
 * Token t sits at absolute position kvLen − tokens + t and sees keys 0..that position (causal).
 *
 * The keys are split in chunks of `splitSize` (a multiple of 32); one workgroup per (chunk, KV head)
 * handles every query head of that KV head and every new token, so each cached K/V row is read once
 * per step. With one chunk the output is written directly; otherwise partials go to `scratch`
 * (`attentionDecodeScratchBytes`) and a merge dispatch combines them.
 */
import decodeSource from '../../shaders/attention_decode.wgsl?raw';
import mergeSource from '../../shaders/attention_merge.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';
import { checkHeads, checkKv, checkOffset, checkOutDistinct, kvStrides, uniformBlock, workgroupBudget, type KvLayout } from './attention_common.ts';

export const DECODE_MAX_TOKENS = 4;
/** Split sizes are multiples of this. */
export const DECODE_SPLIT_ALIGN = 32;
const WG = 128;
const NQV_MAX = 16;
/** Up to this many keys, one split (no merge dispatch: a dispatch costs more than reading them). */
const SINGLE_SPLIT_KEYS = 256;
/** Aim for about this many workgroups when splitting long contexts ('tile', GPUs). */
const TARGET_WORKGROUPS = 128;

export interface AttentionDecodeShape {
  /** New query tokens, 1..4. */
  tokens: number;
  /** Keys visible to the last token (cached past + the new tokens). */
  kvLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Keys per split (multiple of 32); default chosen from kvLen (see decodePlan). */
  splitSize?: number;
  /** Default: 'rows' on software adapters, else 'tile'. */
  variant?: DecodeVariant;
}

/**
 * 'tile': one workgroup per (split, KV head) for all its query heads and tokens, K through
 * workgroup-memory tiles (GPUs). 'rows': one invocation per (query vector, split), no workgroup memory,
 * no barriers (CPU adapters: SwiftShader charges ~1 µs per f32 of workgroup memory per workgroup and
 * tens of µs per barrier). Measured at 4k context, 9/3, d64: rows 2× (SwiftShader) and 2.7× (GLES)
 * faster than tile there.
 */
export type DecodeVariant = 'tile' | 'rows';
/** Keys per split of the 'rows' variant on long contexts (one split up to this many keys). */
const ROWS_SPLIT = 512;

export interface AttentionDecodeArgs extends AttentionDecodeShape {
  q: Binding;
  k: Binding;
  v: Binding;
  out: Binding;
  /** Partials when there is more than one split: ≥ attentionDecodeScratchBytes(...) bytes. */
  scratch?: Binding;
  /** Where K/V live: normally `{ kind: 'cache', capacity }` of the KV cache. */
  kvLayout: KvLayout;
  /** Default headDim^-0.5. */
  scale?: number;
  qStride?: number;
  qOffset?: number;
  kOffset?: number;
  vOffset?: number;
}

export interface DecodePlan {
  variant: DecodeVariant;
  headsPerTile: number;
  gTiles: number;
  nqv: number;
  bk: number;
  smax: number;
  tpv: number;
  splitSize: number;
  nSplits: number;
  scratchBytes: number;
}

/** Tiling, split size and scratch size for a decode step on this device. */
export function decodePlan(gpu: GpuContext, s: AttentionDecodeShape): DecodePlan {
  const K = 'attention_decode';
  requireDims(K, { tokens: s.tokens, kvLen: s.kvLen });
  checkHeads(K, s.heads, s.kvHeads, s.headDim);
  if (s.tokens > DECODE_MAX_TOKENS) throw new WebVLMError('ShapeMismatch', `${K}: ${s.tokens} query tokens; at most ${DECODE_MAX_TOKENS} (use attentionPrefill).`);
  if (s.kvLen < s.tokens) throw new WebVLMError('ShapeMismatch', `${K}: kvLen ${s.kvLen} must include the ${s.tokens} new tokens' keys.`);
  const hd4 = s.headDim / 4, group = s.heads / s.kvHeads;
  const variant = s.variant ?? (gpu.caps.software ? 'rows' : 'tile');
  const budget = workgroupBudget(gpu.caps.limits.maxComputeWorkgroupStorageSize);
  const fixed = (nqv: number, bk: number) => 16 * (nqv * hd4 + bk * (hd4 + 1) + 2 * WG) + 4 * WG + 8 * nqv;
  let headsPerTile = Math.min(group, Math.floor(NQV_MAX / s.tokens));
  for (;;) {
    const nqv = s.tokens * headsPerTile;
    for (const bk of [32, 16]) {
      const room = Math.floor((budget - fixed(nqv, bk)) / (4 * nqv));
      const smax = Math.min(512, Math.floor(room / DECODE_SPLIT_ALIGN) * DECODE_SPLIT_ALIGN);
      if (smax < DECODE_SPLIT_ALIGN) continue;
      // The 'rows' variant keeps no scores in workgroup memory: any chunk length works.
      const maxSplit = variant === 'rows' ? Infinity : smax;
      let splitSize = s.splitSize ?? 0;
      if (s.splitSize !== undefined) {
        if (!Number.isInteger(splitSize) || splitSize <= 0 || splitSize % DECODE_SPLIT_ALIGN !== 0 || splitSize > maxSplit) {
          throw new WebVLMError('InvalidArgument', `${K}: splitSize ${splitSize} must be a positive multiple of ${DECODE_SPLIT_ALIGN}, at most ${maxSplit} here.`);
        }
      } else if (variant === 'rows') {
        splitSize = ceilDiv(Math.min(s.kvLen, ROWS_SPLIT), DECODE_SPLIT_ALIGN) * DECODE_SPLIT_ALIGN;
      } else if (s.kvLen <= Math.min(SINGLE_SPLIT_KEYS, smax)) {
        splitSize = ceilDiv(s.kvLen, DECODE_SPLIT_ALIGN) * DECODE_SPLIT_ALIGN;
      } else {
        const gTiles = ceilDiv(group, headsPerTile);
        const wanted = ceilDiv(TARGET_WORKGROUPS, s.kvHeads * gTiles);
        splitSize = Math.min(smax, Math.max(64, ceilDiv(ceilDiv(s.kvLen, wanted), 64) * 64));
      }
      const nSplits = ceilDiv(s.kvLen, splitSize);
      const nqvP = 2 ** Math.ceil(Math.log2(nqv));
      const nrec = s.tokens * s.heads;
      return {
        variant,
        headsPerTile, gTiles: ceilDiv(group, headsPerTile), nqv, bk, smax, tpv: WG / nqvP, splitSize, nSplits,
        scratchBytes: nSplits > 1 ? nSplits * nrec * (s.headDim + 4) * 4 : 0,
      };
    }
    if (headsPerTile === 1) break;
    headsPerTile = Math.max(1, Math.floor(headsPerTile / 2));
  }
  throw new WebVLMError('UnsupportedFeature', `${K}: head_dim ${s.headDim} needs more workgroup memory than this device's ${budget} bytes.`);
}

/** Bytes of `scratch` a decode step with this shape needs (0 when it runs as one split). */
export function attentionDecodeScratchBytes(gpu: GpuContext, s: AttentionDecodeShape): number {
  return decodePlan(gpu, s).scratchBytes;
}

export function attentionDecode(gpu: GpuContext, rec: Recorder, args: AttentionDecodeArgs): void {
  const K = 'attention_decode';
  const { tokens, kvLen, heads, kvHeads, headDim } = args;
  const plan = decodePlan(gpu, args);
  const qStride = args.qStride ?? heads * headDim;
  const { qOffset = 0, kOffset = 0, vOffset = 0 } = args;
  checkOffset(K, 'qOffset', qOffset);
  checkOffset(K, 'qStride', qStride);
  if (qStride < heads * headDim) throw new WebVLMError('ShapeMismatch', `${K}: qStride ${qStride} is shorter than a row of ${heads}×${headDim}.`);
  const scale = args.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new WebVLMError('InvalidArgument', `${K}: scale must be finite, got ${scale}.`);
  const kv = kvStrides(K, args.kvLayout, kvHeads, headDim, kvLen, 1);
  requireBytes(K, 'q', args.q, (qOffset + (tokens - 1) * qStride + heads * headDim) * 4);
  checkKv(K, args.k, args.v, kOffset, vOffset, kv.span);
  requireBytes(K, 'out', args.out, tokens * heads * headDim * 4);
  const direct = plan.nSplits === 1;
  if (!direct) {
    if (!args.scratch) throw new WebVLMError('InvalidArgument', `${K}: ${plan.nSplits} splits need a scratch buffer of ${plan.scratchBytes} bytes.`);
    requireBytes(K, 'scratch', args.scratch, plan.scratchBytes);
    checkOutDistinct(K, args.scratch, [args.q, args.k, args.v, args.out]);
  }
  checkOutDistinct(K, args.out, [args.q, args.k, args.v]);
  if (plan.nSplits > gpu.caps.limits.maxComputeWorkgroupsPerDimension) {
    throw new WebVLMError('InvalidArgument', `${K}: ${plan.nSplits} splits exceed one dispatch dimension; use a larger splitSize.`);
  }

  const hd4 = headDim / 4;
  const group = heads / kvHeads;
  const variant = plan.variant;
  const pipeline = variant === 'rows'
    ? gpu.pipelines.get({ name: 'attention_decode', source: decodeSource, entryPoint: 'main_rows', constants: { HD4: hd4 } })
    : gpu.pipelines.get({ name: 'attention_decode', source: decodeSource, constants: { HD4: hd4, NQV: plan.nqv, BK: plan.bk, SMAX: plan.smax, TPV: plan.tpv } });
  const params = rec.uniform(
    uniformBlock(
      [
        kvLen, tokens, group, plan.headsPerTile, plan.gTiles, heads, plan.splitSize, plan.nSplits,
        qStride / 4, qOffset / 4, kv.row4, kv.head4, kOffset / 4, vOffset / 4, (heads * headDim) / 4, direct ? 1 : 0,
      ],
      scale * Math.LOG2E,
    ),
  );
  const part = direct ? dummy(gpu) : args.scratch!;
  const label = `attention_decode/${variant} ${tokens}→${kvLen} h${heads}/${kvHeads} d${headDim} split${plan.splitSize}×${plan.nSplits}`;
  const workgroups: [number, number, number] = variant === 'rows' ? [ceilDiv(tokens * heads, 16), plan.nSplits, 1] : [plan.nSplits, kvHeads * plan.gTiles, 1];
  rec.dispatch(pipeline, [args.q, args.k, args.v, args.out, part, params], workgroups, label);
  if (direct) return;
  const merge = gpu.pipelines.get({ name: 'attention_merge', source: mergeSource, constants: { HD4: hd4 } });
  const mparams = rec.uniform(new Uint32Array([plan.nSplits, tokens * heads, heads, (heads * headDim) / 4]));
  rec.dispatch(merge, [part, args.out, mparams], [tokens * heads, 1, 1], `attention_merge ${plan.nSplits}×${tokens * heads}`);
}
