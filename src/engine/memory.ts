/**
 * GPU memory a model will need, estimated before any weight is downloaded or allocated: from config.json (KV cache,
 * activations) and the safetensors header(s) (every weight's shape; read with two small range reads per file), for
 * the chosen weight format. Checked against the adapter's per-buffer limits and an optional total budget, so an
 * impossible load fails at once with `OutOfMemory` and the numbers, not after a 500 MB download with a lost device.
 *
 * The weight bytes are the family's tensor plan under the chosen formats (models/plan.ts `planBytes`: what the plan
 * loader allocates — int4 linear weights as 4 bits per weight in 16-byte blocks of 32 plus one f16 scale per group of
 * 32, the token table as f16, the rest f32; q/k/v and gate/up fused into one buffer each).
 * tests/reliability/memory.test.ts compares the estimate with what a load really allocates. Activations are an estimate of the transient buffers of the largest vision
 * pass (every frame of one image at once) and of a prefill of the whole context.
 */
import { WebVLMError } from '../errors.ts';
import { readJson, type FileHandle, type FileSource } from './file-source.ts';
import { readHeaderByRange } from './safetensors.ts';
import { readShardHeaders, weightShards } from './checkpoint.ts';
import { familyFor } from '../models/registry.ts';
import { checkHeadersAgainstPlan, planBytes, weightFormats, type WeightsOption } from '../models/plan.ts';
import type { ModelFamily, VlmConfig } from '../models/family.ts';
import { DEFAULT_CONTEXT } from './validate.ts';

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


export function estimateMemory(args: {
  /** The family (default: the one registered for `config.modelType`). */
  family?: ModelFamily<VlmConfig>;
  config: VlmConfig;
  weights: WeightsOption;
  contextLength: number;
  /** Frames of one image encoded in one pass (the family's `framesPerImage`). */
  framesPerImage: number;
}): MemoryEstimate {
  const { config: c, contextLength: ctx } = args;
  const family = args.family ?? familyFor({ model_type: c.modelType });
  const { total: weights, buffers } = planBytes(family.tensorPlan(c), weightFormats(args.weights));
  const t = c.text;
  const kvPerLayer = t.numKeyValueHeads * ctx * t.headDim * 4;
  const kvCache = 2 * t.numHiddenLayers * kvPerLayer;
  buffers.set('KV cache (one layer, K or V)', kvPerLayer);

  const vision = family.visionActivations(c, args.framesPerImage);
  buffers.set(vision.largest.what, vision.largest.bytes);
  // Prefill of the whole context: rows = ctx; buffers as in models/llama.ts.
  const qkvCols = (t.numAttentionHeads + 2 * t.numKeyValueHeads) * t.headDim;
  const text = ctx * (4 * t.hiddenSize + qkvCols + t.numAttentionHeads * t.headDim + 3 * t.intermediateSize) * 4 + t.vocabSize * 4;
  buffers.set('prefill gate/up activations', ctx * 2 * t.intermediateSize * 4);
  const activations = Math.max(vision.bytes, text);

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
 * big is read. `contextLength` as the engine picks it: min(requested ?? DEFAULT_CONTEXT, max_position_embeddings).
 */
export async function estimateCheckpointMemory(source: FileSource, opts: { model: string; weights: WeightsOption; contextLength?: number; signal?: AbortSignal }): Promise<MemoryEstimate> {
  const open = async (f: string) => source.open(f, { signal: opts.signal });
  const cfgFile = await open('config.json');
  if (!cfgFile) throw new WebVLMError('ModelNotFound', `${opts.model}: config.json not found.`, { details: { file: 'config.json' } });
  const json = await readJson(cfgFile, { signal: opts.signal });
  const family = familyFor(json);
  const config = family.parseConfig(json);
  const pre = await open('preprocessor_config.json');
  const framesPerImage = family.framesPerImage(config, pre ? await readJson(pre, { signal: opts.signal }) as Record<string, unknown> : null);
  const single = await open('model.safetensors');
  const index = single ? null : await open('model.safetensors.index.json');
  const { weights } = await weightShards(source, single, index, { signal: opts.signal, label: opts.model });
  // config.json must describe these weights (every shard's header) before its numbers are trusted: a lying hidden
  // size or layer count would otherwise be sized into an estimate (and allocations) no tensor backs.
  const headers = await readShardHeaders(weights, { signal: opts.signal, weightDtypes: null });
  checkHeadersAgainstPlan(() => family.tensorPlan(config), family.layerCount(config), headers, weights[0].expected ? new Set(weights.flatMap((w) => [...w.expected!])) : undefined);
  const ctx = Math.min(opts.contextLength ?? DEFAULT_CONTEXT, config.text.maxPositionEmbeddings);
  return estimateMemory({ family, config, weights: opts.weights, contextLength: ctx, framesPerImage });
}
