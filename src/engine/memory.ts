/**
 * GPU memory a model will need, estimated before any weight is downloaded or allocated: from config.json (KV cache,
 * activations) and the safetensors header(s) (every weight's shape; read with two small range reads per file), for
 * the chosen weight format. Checked against the adapter's per-buffer limits and an optional total budget, so an
 * impossible load fails at once with `OutOfMemory` and the numbers, not after a 500 MB download with a lost device.
 *
 * The sizes mirror what `models/idefics3-weights.ts` allocates (int4 mode: every 2-D linear weight — projections,
 * MLPs, connector, lm_head — as 4 bits per weight in 16-byte blocks of 32 plus one f16 scale per group of 32, the
 * token table as f16, the rest f32; f32 mode: everything f32; q/k/v and gate/up fused into one buffer each).
 * tests/reliability/memory.test.ts compares the estimate with what a load really allocates. Activations are an estimate of the transient buffers of the largest vision
 * pass (every frame of one image at once) and of a prefill of the whole context.
 */
import { WebVLMError } from '../errors.ts';
import type { Idefics3Config } from '../models/idefics3/config.ts';
import { visionChunkFrames } from '../models/idefics3/model.ts';
import { parseIdefics3Config } from '../models/idefics3/config.ts';
import { readJson, type FileHandle, type FileSource } from './file-source.ts';
import { readHeaderByRange } from './safetensors.ts';
import { parseProcessorConfig } from '../models/idefics3/processor.ts';
import { checkCheckpointHeaders } from '../models/idefics3/layout.ts';
import { readShardHeaders, weightShards } from './checkpoint.ts';

export interface WeightTensor {
  name: string;
  shape: number[];
}

export interface MemoryEstimate {
  /** Weight bytes on the GPU in the chosen format. */
  weights: number;
  kvCache: number;
  /** Peak transient bytes (the larger of a full vision pass and a full-context prefill). */
  activations: number;
  total: number;
  /** The largest single buffer, and what it is (checked against maxBufferSize / maxStorageBufferBindingSize). */
  largestBuffer: { bytes: number; what: string };
  contextLength: number;
  /** Frames of one image encoded in one pass that the activation figure assumes. */
  framesPerImage: number;
}

export interface MemoryLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Total bytes the caller allows (e.g. from `EngineOptions.memoryBudget`); none when undefined. */
  budget?: number;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** int4 bytes of an [N, K] matrix: packed nibbles in 16-byte blocks of 32, and f16 scales per group of 32 (two per word). */
function int4Bytes(N: number, K: number): { packed: number; scales: number } {
  const blocks = Math.ceil(K / 32);
  return { packed: N * blocks * 16, scales: N * Math.ceil(blocks / 2) * 4 };
}

export function estimateMemory(args: {
  config: Idefics3Config;
  tensors: WeightTensor[];
  weights: 'int4' | 'f32';
  contextLength: number;
  /** Frames of one image at the default detail (processor: (longest_edge / tile)² + 1). */
  framesPerImage: number;
}): MemoryEstimate {
  const { config: c, tensors, contextLength: ctx } = args;
  let weights = 0;
  /** Fused buffers: q/k/v → one, gate/up → one. */
  const buffers = new Map<string, number>();
  const add = (key: string, bytes: number) => buffers.set(key, (buffers.get(key) ?? 0) + bytes);
  const quantized = (n: number, k: number, key: string) => {
    const b = int4Bytes(n, k);
    weights += b.packed + b.scales;
    add(`${key} (int4 packed)`, b.packed);
    add(`${key} (int4 scales)`, b.scales);
  };
  for (const t of tensors) {
    const fused = t.name.replace(/self_attn\.(q|k|v)_proj/, 'self_attn.qkv_proj').replace(/mlp\.(gate|up)_proj/, 'mlp.gate_up_proj');
    const int4 = args.weights === 'int4';
    if (int4 && /embed_tokens\.weight$/.test(t.name) && t.shape.length === 2) {
      // f16 token table; a tied lm_head is quantized from it as well.
      const bytes = numel(t.shape) * 2;
      weights += bytes;
      add(`${t.name} (f16)`, bytes);
      if (c.tieWordEmbeddings) quantized(t.shape[0], t.shape[1], 'lm_head.weight');
    } else if (int4 && /\.weight$/.test(t.name) && !/embed/.test(t.name) && t.shape.length === 2) {
      quantized(t.shape[0], t.shape[1], fused);
    } else {
      const bytes = numel(t.shape) * 4;
      weights += bytes;
      add(`${fused} (f32)`, bytes);
    }
  }
  const t = c.text, v = c.vision;
  const kvPerLayer = t.numKeyValueHeads * ctx * t.headDim * 4;
  const kvCache = 2 * t.numHiddenLayers * kvPerLayer;
  buffers.set('KV cache (one layer, K or V)', kvPerLayer);

  // Vision pass: rows = frames · patches; buffers as in models/siglip.ts and the connector.
  const rows = args.framesPerImage * v.numPatches;
  const patchVals = 3 * v.patchSize * v.patchSize;
  const vision = rows * (7 * v.hiddenSize + v.intermediateSize + patchVals) * 4 + (rows / (c.scaleFactor ** 2)) * t.hiddenSize * 4;
  buffers.set(`vision MLP activations (${args.framesPerImage} frames)`, rows * v.intermediateSize * 4);
  // Prefill of the whole context: rows = ctx; buffers as in models/llama.ts.
  const qkvCols = (t.numAttentionHeads + 2 * t.numKeyValueHeads) * t.headDim;
  const text = ctx * (4 * t.hiddenSize + qkvCols + t.numAttentionHeads * t.headDim + 3 * t.intermediateSize) * 4 + t.vocabSize * 4;
  buffers.set('prefill gate/up activations', ctx * 2 * t.intermediateSize * 4);
  const activations = Math.max(vision, text);

  let largestBuffer = { bytes: 0, what: '' };
  for (const [what, bytes] of buffers) if (bytes > largestBuffer.bytes) largestBuffer = { bytes, what };
  return { weights, kvCache, activations, total: weights + kvCache + activations, largestBuffer, contextLength: ctx, framesPerImage: args.framesPerImage };
}

const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Throws `OutOfMemory` (with every number in `details`) when the estimate cannot fit. */
export function checkMemory(model: string, e: MemoryEstimate, limits: MemoryLimits): void {
  const perBuffer = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  const details = { ...e, largestBuffer: e.largestBuffer.bytes, largestBufferWhat: e.largestBuffer.what, ...limits };
  const parts = `weights ${mb(e.weights)} + KV cache ${mb(e.kvCache)} (${e.contextLength} tokens) + activations ${mb(e.activations)}`;
  if (e.largestBuffer.bytes > perBuffer) {
    throw new WebVLMError('OutOfMemory',
      `${model} needs a GPU buffer of ${mb(e.largestBuffer.bytes)} (${e.largestBuffer.what}), but this adapter allows at most ${mb(perBuffer)} per buffer (maxBufferSize ${mb(limits.maxBufferSize)}, maxStorageBufferBindingSize ${mb(limits.maxStorageBufferBindingSize)}).`,
      { hint: 'Use int4 weights, a shorter contextLength, a lower image detail, or a smaller model; this GPU cannot hold a buffer that large.', details });
  }
  if (limits.budget !== undefined && e.total > limits.budget) {
    throw new WebVLMError('OutOfMemory', `${model} needs about ${mb(e.total)} of GPU memory (${parts}), more than the budget of ${mb(limits.budget)}.`, {
      hint: 'Raise memoryBudget, use int4 weights, a shorter contextLength, or a smaller model.', details,
    });
  }
}

/** The tensors (names and shapes) of safetensors files, from their headers only (two range reads each). */
export async function readWeightHeaders(files: FileHandle[], signal?: AbortSignal): Promise<WeightTensor[]> {
  const out: WeightTensor[] = [];
  for (const f of files) {
    const h = await readHeaderByRange(f, { signal, weightDtypes: null });
    for (const t of h.tensors) out.push({ name: t.name, shape: t.shape });
  }
  return out;
}

/**
 * The estimate for a checkpoint in `source`: config.json, preprocessor_config.json and the safetensors header(s) only.
 * Throws what those files are wrong with (`ModelNotFound`, `UnsupportedModel`, `CorruptCheckpoint`) before anything
 * big is read. `contextLength` as the engine picks it: min(requested ?? 4096, max_position_embeddings).
 */
export async function estimateCheckpointMemory(source: FileSource, opts: { model: string; weights: 'int4' | 'f32'; contextLength?: number; signal?: AbortSignal }): Promise<MemoryEstimate> {
  const open = async (f: string) => source.open(f, { signal: opts.signal });
  const cfgFile = await open('config.json');
  if (!cfgFile) throw new WebVLMError('ModelNotFound', `${opts.model}: config.json not found.`, { details: { file: 'config.json' } });
  const config = parseIdefics3Config(await readJson(cfgFile, { signal: opts.signal }));
  const pre = await open('preprocessor_config.json');
  let framesPerImage = 1;
  if (pre) {
    const p = parseProcessorConfig(await readJson(pre, { signal: opts.signal }), undefined, undefined);
    framesPerImage = p.doImageSplitting ? Math.ceil(p.longestEdge / p.tileSize) ** 2 + 1 : 1;
  }
  // The model encodes an image's frames in chunks (models/idefics3.ts), so activations scale with the chunk.
  framesPerImage = Math.min(framesPerImage, visionChunkFrames(config));
  const single = await open('model.safetensors');
  const index = single ? null : await open('model.safetensors.index.json');
  const { weights } = await weightShards(source, single, index, { signal: opts.signal, label: opts.model });
  // config.json must describe these weights (every shard's header) before its numbers are trusted: a lying hidden
  // size or layer count would otherwise be sized into an estimate (and allocations) no tensor backs.
  const headers = await readShardHeaders(weights, { signal: opts.signal, weightDtypes: null });
  checkCheckpointHeaders(config, headers, weights[0].expected ? new Set(weights.flatMap((w) => [...w.expected!])) : undefined);
  const tensors: WeightTensor[] = headers.flatMap((h) => h.header.tensors.map((t) => ({ name: t.name, shape: t.shape })));
  const ctx = Math.min(opts.contextLength ?? 4096, config.text.maxPositionEmbeddings);
  return estimateMemory({ config, tensors, weights: opts.weights, contextLength: ctx, framesPerImage });
}
