/**
 * Loading a model: checkpoint files from a FileSource (the hub by default) → config, tokenizer, processor,
 * and the GPU model with weights streamed, converted, quantized and uploaded tensor by tensor.
 */
import type { GpuContext } from '../gpu/context.ts';
import { HubSource } from './hub.ts';
import type { FileSource, ProgressCallback } from './file-source.ts';
import { openCheckpoint, readCheckpointTensors, readShardHeaders } from './checkpoint.ts';
import { requireFinite, tensorToF32 } from './safetensors.ts';
import { Tokenizer } from '../input/tokenizer.ts';
import { familyFor } from '../models/registry.ts';
import { PlanChecker, weightFormats, type WeightsOption } from '../models/plan.ts';
import type { ChatProcessor, ModelFamily, TensorSource, VisionLanguageModel, VlmConfig } from '../models/family.ts';

export interface LoadOptions {
  baseUrl?: string;
  revision?: string;
  /** 'int4' (default), 'f32', or per part: `{ vision: 'f32', text: 'int4' }`. */
  weights?: WeightsOption;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Where files come from; default the hub at `baseUrl`. */
  source?: FileSource;
  /** The checkpoint's files and sizes, once opened (for a whole-load progress figure). */
  onFiles?: (files: Array<{ name: string; size: number | null }>) => void;
}

export interface LoadedModel {
  family: ModelFamily<VlmConfig>;
  config: VlmConfig;
  tokenizer: Tokenizer;
  processor: ChatProcessor;
  model: VisionLanguageModel;
  generationConfig: Record<string, unknown> | null;
}

export async function loadModel(gpu: GpuContext, modelId: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const source = opts.source ?? new HubSource(modelId, { baseUrl: opts.baseUrl, revision: opts.revision, signal: opts.signal, onProgress: opts.onProgress });
  const label = `${modelId}@${opts.revision ?? 'main'}`;
  const files = await openCheckpoint(source, { signal: opts.signal, onProgress: opts.onProgress, label, onFiles: opts.onFiles });
  const family = familyFor(files.config);
  const config = family.parseConfig(files.config);
  const tokenizer = Tokenizer.fromFiles({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig, chatTemplate: files.chatTemplate ?? undefined });
  const processor = family.createProcessor(tokenizer, { config: files.config, preprocessorConfig: files.preprocessorConfig, processorConfig: files.processorConfig, tokenizerConfig: files.tokenizerConfig }, config);
  family.checkConsistency(config, tokenizer, processor);
  // The weight loader sizes every GPU buffer from config.json as soon as it is built, so config.json is checked
  // against every weight file's header first and a lying config fails as CorruptCheckpoint, not as an allocation.
  // The stream checks the index's names and each file's header before its data, so pulling the first tensor checks
  // the first file; the other shards' headers are range-read (no data) now. (The first file is not range-read too:
  // its header comes with the stream, and a second read of the same bytes costs a round trip per load.)
  const plan = family.tensorPlan(config);
  const pre = new PlanChecker(plan);
  for (const h of await readShardHeaders(files.weights.slice(1), { signal: opts.signal })) pre.check(h.file, h.header.tensors);
  const tensors = readCheckpointTensors(files, { signal: opts.signal, onProgress: opts.onProgress, checker: new PlanChecker(plan) });
  const formats = weightFormats(opts.weights);
  const anyInt4 = formats.vision === 'int4' || formats.text === 'int4';
  async function* converted(): AsyncGenerator<TensorSource> {
    let n = 0;
    for await (const t of tensors) {
      const values = tensorToF32(t);
      requireFinite(values, t); // before the values reach the GPU or the int4 quantizer
      n++;
      opts.onProgress?.({ phase: anyInt4 ? 'quantize' : 'upload', file: t.name, loaded: n, total: plan.tensors.length });
      yield { name: t.name, shape: t.shape, values };
    }
  }
  const it = converted();
  const first = await it.next();
  async function* all(): AsyncGenerator<TensorSource> {
    if (!first.done) yield first.value;
    yield* it;
  }
  let model: VisionLanguageModel;
  try {
    model = await family.load(gpu, config, all(), formats);
  } finally {
    await it.return(undefined); // a load that failed before reading on still holds an open stream: cancel it
  }
  return { family, config, tokenizer, processor, model, generationConfig: files.generationConfig };
}
