/**
 * Loading a model: checkpoint files from a FileSource (the hub by default) → config, tokenizer, processor,
 * and the GPU model with weights streamed, converted, quantized and uploaded tensor by tensor.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { HubSource } from './hub.ts';
import type { FileSource, ProgressCallback } from './file-source.ts';
import { openCheckpoint, readCheckpointTensors } from './checkpoint.ts';
import { tensorToF32 } from './safetensors.ts';
import { idefics3Checker } from './idefics3-layout.ts';
import { Tokenizer } from './tokenizer.ts';
import { Idefics3Processor } from './idefics3-processor.ts';
import { parseIdefics3Config, type Idefics3Config } from '../models/idefics3-config.ts';
import { Idefics3Model, type TensorSource } from '../models/idefics3.ts';
import type { WeightFormat } from '../models/idefics3-weights.ts';

export interface LoadOptions {
  baseUrl?: string;
  revision?: string;
  weights?: WeightFormat;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Where files come from; default the hub at `baseUrl`. */
  source?: FileSource;
}

export interface LoadedModel {
  config: Idefics3Config;
  tokenizer: Tokenizer;
  processor: Idefics3Processor;
  model: Idefics3Model;
  generationConfig: Record<string, unknown> | null;
}

export async function loadModel(gpu: GpuContext, modelId: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const source = opts.source ?? new HubSource(modelId, { baseUrl: opts.baseUrl, revision: opts.revision, signal: opts.signal, onProgress: opts.onProgress });
  const label = `${modelId}@${opts.revision ?? 'main'}`;
  const files = await openCheckpoint(source, { signal: opts.signal, onProgress: opts.onProgress, label });
  const config = parseIdefics3Config(files.config);
  const tokenizer = Tokenizer.fromFiles({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig, chatTemplate: files.chatTemplate ?? undefined });
  const processor = Idefics3Processor.fromFiles(tokenizer, { preprocessorConfig: files.preprocessorConfig, processorConfig: files.processorConfig, modelConfig: files.config });
  if (tokenizer.tokenToId('<image>') !== config.imageTokenId) {
    throw new WebVLMError('CorruptCheckpoint', `config.json image_token_id ${config.imageTokenId} is not the tokenizer's <image> id ${tokenizer.tokenToId('<image>')}.`);
  }
  if (processor.config.imageSeqLen !== config.vision.numPatches / (config.scaleFactor * config.scaleFactor)) {
    throw new WebVLMError('CorruptCheckpoint', `processor image_seq_len ${processor.config.imageSeqLen} does not match the vision tower (${config.vision.numPatches} patches / ${config.scaleFactor}²).`);
  }
  const tensors = readCheckpointTensors(files, { signal: opts.signal, onProgress: opts.onProgress, checker: idefics3Checker(config) });
  const weights = opts.weights ?? 'int4';
  async function* converted(): AsyncGenerator<TensorSource> {
    let n = 0;
    for await (const t of tensors) {
      const values = tensorToF32(t);
      n++;
      opts.onProgress?.({ phase: weights === 'int4' ? 'quantize' : 'upload', file: t.name, loaded: n, total: 0 });
      yield { name: t.name, shape: t.shape, values };
    }
  }
  const model = await Idefics3Model.load(gpu, config, converted(), weights);
  return { config, tokenizer, processor, model, generationConfig: files.generationConfig };
}
