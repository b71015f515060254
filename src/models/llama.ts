/**
 * Llama decoder (transformers `LlamaModel` + `lm_head`) on the GPU, with a KV cache:
 * per layer h += o(attn(rope(q), rope(k), v)) on RMSNorm(h); h += down(silu(gate)·up) on RMSNorm(h);
 * then the final RMSNorm and lm_head on the rows whose logits are wanted.
 * q/k/v are one fused projection ([S, (heads + 2·kvHeads)·hd]); gate/up one fused projection ([S, 2·I]).
 *
 * Family-neutral options (`DecoderConfig`; absent = Llama's behaviour, the same dispatches and bits):
 * - biases on any projection (Llama `attention_bias`/`mlp_bias`, Qwen2's q/k/v bias): carried by the `Linear`s
 *   the family's tensor plan builds, so nothing here;
 * - a tied or untied head: the plan's `lm_head` target (tied: filled from embed_tokens);
 * - RoPE scaling ('linear', 'dynamic': models/rope-scaling.ts), the frequencies computed on the host per call;
 * - Granite's multipliers (transformers `models/granite/modular_granite.py`): `embeddingMultiplier` scales the
 *   decoder's input rows (after any image features are merged, as `GraniteModel.forward` scales `inputs_embeds`),
 *   `attentionScale` replaces hd^-0.5 (attention_multiplier), `residualMultiplier` scales each branch before its
 *   residual add, `logitsDivisor` divides the logits (GraniteForCausalLM's logits_scaling; a VLM whose lm_head is its own
 *   module, not the language model's `*ForCausalLM`, does not apply it and leaves it unset).
 */
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { WebVLMError } from '../errors.ts';
import { rmsNorm } from '../kernels/norm.ts';
import { add, scale, siluMul } from '../kernels/elementwise.ts';
import { checkKvCacheShape, kvAppend, kvCacheLayerBytes } from '../kernels/kv_cache.ts';
import { embedding, type EmbeddingTable } from '../kernels/embedding.ts';
import { attentionDecode, attentionDecodeScratchBytes } from '../kernels/attention_decode.ts';
import { rope } from '../kernels/rope.ts';
import { attentionPrefill } from '../kernels/attention_prefill.ts';
import { linear, type Linear, type Workspace } from './layers.ts';
import { ropeFrequencies, type RopeScaling } from './rope-scaling.ts';

export type { RopeScaling };

/** The decoder's shape and options (a family's parsed text config satisfies it). */
export interface DecoderConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Absent: default RoPE. */
  ropeScaling?: RopeScaling;
  /** Attention scores' scale; absent: headDim^-0.5. */
  attentionScale?: number;
  /** Input rows × this (after image features are merged); absent: 1. */
  embeddingMultiplier?: number;
  /** h += m · branch; absent: 1. */
  residualMultiplier?: number;
  /** logits ÷ this; absent: 1. */
  logitsDivisor?: number;
}

export interface LlamaLayer {
  inputNorm: GPUBuffer;
  qkv: Linear;
  o: Linear;
  postNorm: GPUBuffer;
  gateUp: Linear;
  down: Linear;
}

export interface LlamaWeights {
  /** embed_tokens [vocab, H]: f32 or f16 table, gathered by the embedding kernel. */
  embed: EmbeddingTable;
  layers: LlamaLayer[];
  norm: GPUBuffer;
  lmHead: Linear;
}

/**
 * KV cache: per layer one K and one V buffer laid out [kvHeads, capacity, headDim], so one head's keys are
 * contiguous for the attention kernels (see src/kernels/attention_common.ts, layout `cache`).
 * `length` tokens are valid; the engine keeps `tokens` (their ids) to reuse a prefix across turns.
 */
export class KvCache {
  readonly k: GPUBuffer[] = [];
  readonly v: GPUBuffer[] = [];
  length = 0;
  tokens: number[] = [];

  constructor(gpu: GpuContext, cfg: Pick<DecoderConfig, 'numHiddenLayers' | 'numKeyValueHeads' | 'headDim'>, readonly capacity: number) {
    const shape = { layers: cfg.numHiddenLayers, kvHeads: cfg.numKeyValueHeads, headDim: cfg.headDim, capacity };
    checkKvCacheShape(gpu, shape);
    const bytes = kvCacheLayerBytes(shape);
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      this.k.push(gpu.allocator.create(bytes, undefined, `kv/k${l}`));
      this.v.push(gpu.allocator.create(bytes, undefined, `kv/v${l}`));
    }
  }

  get bytes(): number {
    return this.k.reduce((s, b) => s + b.size, 0) * 2;
  }

  destroy(gpu: GpuContext): void {
    for (const b of [...this.k, ...this.v]) gpu.allocator.destroy(b);
    this.k.length = this.v.length = 0;
  }
}

/** Gathers the embedding rows of `ids` into h[0..ids.length) (ids uploaded as u32 into `idsBuf`). */
export function embedTokens(gpu: GpuContext, rec: Recorder, w: LlamaWeights, ids: ArrayLike<number>, idsBuf: GPUBuffer, h: GPUBuffer): void {
  const V = w.embed.dtype === 'int4' ? w.embed.weights.N : w.embed.V;
  const u = new Uint32Array(ids.length);
  for (let s = 0; s < ids.length; s++) {
    const id = ids[s];
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new WebVLMError('InvalidArgument', `token id ${id} is outside the vocabulary (${V}).`);
    u[s] = id;
  }
  gpu.device.queue.writeBuffer(idsBuf, 0, u);
  embedding(gpu, rec, { ids: idsBuf, table: w.embed, out: h, T: ids.length });
}

/**
 * Runs S rows of hidden state `h` (already embedded, image features merged) at positions
 * startPos..startPos+S−1 through the decoder, appending their K/V to the cache; writes the logits of the
 * last `logitRows` rows to `logits` ([logitRows, vocab]).
 */
export function llamaForward(
  gpu: GpuContext, rec: Recorder, ws: Workspace, w: LlamaWeights, cfg: DecoderConfig, cache: KvCache,
  h: GPUBuffer, S: number, startPos: number, logits: GPUBuffer, logitRows = 1,
): void {
  if (startPos + S > cache.capacity) {
    throw new WebVLMError('ContextOverflow', `${startPos + S} tokens do not fit the KV cache of ${cache.capacity}.`, { details: { needed: startPos + S, capacity: cache.capacity } });
  }
  const H = cfg.hiddenSize, hd = cfg.headDim, nh = cfg.numAttentionHeads, nkv = cfg.numKeyValueHeads, I = cfg.intermediateSize;
  const qkvCols = (nh + 2 * nkv) * hd;
  const n = ws.f32(S * H, 'text/norm');
  const qkv = ws.f32(S * qkvCols, 'text/qkv');
  const attn = ws.f32(S * nh * hd, 'text/attn');
  const tmp = ws.f32(S * H, 'text/tmp');
  const gu = ws.f32(S * 2 * I, 'text/gateup');
  const act = ws.f32(S * I, 'text/act');
  const eps = cfg.rmsNormEps;
  const cap = cache.capacity;
  const decodeShape = { tokens: 1, kvLen: startPos + 1, heads: nh, kvHeads: nkv, headDim: hd };
  const scratch = S === 1 ? ws.f32(Math.max(1, attentionDecodeScratchBytes(gpu, decodeShape) / 4), 'text/attn-scratch') : undefined;
  const scaling = cfg.ropeScaling && cfg.ropeScaling.type !== 'default' ? cfg.ropeScaling : undefined;
  const invFreq = scaling ? ropeFrequencies(hd, { theta: cfg.ropeTheta, scaling }, startPos + S) : undefined;
  const attnScale = cfg.attentionScale;
  const residual = cfg.residualMultiplier ?? 1;
  if ((cfg.embeddingMultiplier ?? 1) !== 1) scale(gpu, rec, { x: h, n: S * H, alpha: cfg.embeddingMultiplier! });
  for (let l = 0; l < w.layers.length; l++) {
    const L = w.layers[l];
    rmsNorm(gpu, rec, { x: h, weight: L.inputNorm, out: n, rows: S, D: H, eps });
    linear(gpu, rec, L.qkv, n, qkv, S);
    rope(gpu, rec, {
      q: qkv, k: qkv, S, heads: nh, kvHeads: nkv, headDim: hd, theta: cfg.ropeTheta, startPos,
      qStride: qkvCols, kStride: qkvCols, qOffset: 0, kOffset: nh * hd, invFreq,
    });
    kvAppend(gpu, rec, {
      kNew: qkv, vNew: qkv, kCache: cache.k[l], vCache: cache.v[l], n: S, pos: startPos, kvHeads: nkv, headDim: hd, capacity: cap,
      srcStride: qkvCols, kOffset: nh * hd, vOffset: (nh + nkv) * hd,
    });
    const kvLayout = { kind: 'cache' as const, capacity: cap };
    if (S === 1) {
      // Decode: split the context over workgroups (flash-decoding) and merge.
      attentionDecode(gpu, rec, {
        q: qkv, k: cache.k[l], v: cache.v[l], out: attn, scratch, tokens: 1, kvLen: startPos + 1, heads: nh, kvHeads: nkv, headDim: hd,
        qStride: qkvCols, kvLayout, scale: attnScale,
      });
    } else {
      attentionPrefill(gpu, rec, {
        q: qkv, k: cache.k[l], v: cache.v[l], out: attn, seqLen: S, heads: nh, kvHeads: nkv, headDim: hd,
        causal: true, past: startPos, qStride: qkvCols, qOffset: 0, kvLayout, scale: attnScale,
      });
    }
    linear(gpu, rec, L.o, attn, tmp, S);
    add(gpu, rec, { a: h, b: tmp, n: S * H, alpha: residual });
    rmsNorm(gpu, rec, { x: h, weight: L.postNorm, out: n, rows: S, D: H, eps });
    linear(gpu, rec, L.gateUp, n, gu, S);
    siluMul(gpu, rec, { gateUp: gu, out: act, rows: S, I });
    linear(gpu, rec, L.down, act, tmp, S);
    add(gpu, rec, { a: h, b: tmp, n: S * H, alpha: residual });
  }
  const rows = Math.min(logitRows, S);
  const last = ws.f32(rows * H, 'text/last');
  rec.copy(h, (S - rows) * H * 4, last, 0, rows * H * 4);
  const normed = ws.f32(rows * H, 'text/final');
  rmsNorm(gpu, rec, { x: last, weight: w.norm, out: normed, rows, D: H, eps });
  linear(gpu, rec, w.lmHead, normed, logits, rows);
  // ÷ s as × f32(1/s): exact for the powers of two real configs use (Granite: 8, 16), else within one rounding.
  const div = cfg.logitsDivisor ?? 1;
  if (div !== 1) scale(gpu, rec, { x: logits, n: rows * w.lmHead.N, alpha: 1 / div });
}
