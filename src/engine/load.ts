/**
 * Loading a model: checkpoint files from a FileSource (the hub by default) → config, tokenizer, processor,
 * and the GPU model with weights streamed, converted, quantized and uploaded tensor by tensor.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { HubSource } from './hub.ts';
import type { FileSource, ProgressCallback } from './file-source.ts';
import { openCheckpoint, readCheckpointTensors, readShardHeaders } from './checkpoint.ts';
import { requireFinite, tensorToF32 } from './safetensors.ts';
import { idefics3Checker } from '../models/idefics3/layout.ts';
import { Tokenizer } from '../input/tokenizer.ts';
import { Idefics3Processor } from '../models/idefics3/processor.ts';
import { parseIdefics3Config, type Idefics3Config } from '../models/idefics3/config.ts';
import { Idefics3Model, type TensorSource } from '../models/idefics3/model.ts';
import type { WeightFormat } from '../models/idefics3/weights.ts';

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
  // The processor cuts images into tiles the vision tower must take whole; any other size fails every image chat.
  const tile = processor.config.tileSize, side = config.vision.imageSize;
  if (tile !== side) {
    throw new WebVLMError('CorruptCheckpoint',
      `preprocessor_config.json max_image_size.longest_edge ${tile} (the image tile) does not match config.json vision_config.image_size ${side} (patch_size ${config.vision.patchSize}): the vision tower takes ${side}×${side} tiles.`,
      { details: { file: 'preprocessor_config.json', tileSize: tile, imageSize: side, patchSize: config.vision.patchSize } });
  }
  // The weight loader sizes every GPU buffer from config.json as soon as it is built, so config.json is checked
  // against every weight file's header first and a lying config fails as CorruptCheckpoint, not as an allocation.
  // The stream checks the index's names and each file's header before its data, so pulling the first tensor checks
  // the first file; the other shards' headers are range-read (no data) now. (The first file is not range-read too:
  // its header comes with the stream, and a second read of the same bytes costs a round trip per load.)
  const pre = idefics3Checker(config);
  for (const h of await readShardHeaders(files.weights.slice(1), { signal: opts.signal })) pre.check(h.file, h.header.tensors);
  const tensors = readCheckpointTensors(files, { signal: opts.signal, onProgress: opts.onProgress, checker: idefics3Checker(config) });
  const weights = opts.weights ?? 'int4';
  async function* converted(): AsyncGenerator<TensorSource> {
    let n = 0;
    for await (const t of tensors) {
      const values = tensorToF32(t);
      requireFinite(values, t); // before the values reach the GPU or the int4 quantizer
      n++;
      opts.onProgress?.({ phase: weights === 'int4' ? 'quantize' : 'upload', file: t.name, loaded: n, total: 0 });
      yield { name: t.name, shape: t.shape, values };
    }
  }
  const it = converted();
  const first = await it.next();
  async function* all(): AsyncGenerator<TensorSource> {
    if (!first.done) yield first.value;
    yield* it;
  }
  let model: Idefics3Model;
  try {
    model = await Idefics3Model.load(gpu, config, all(), weights);
  } finally {
    await it.return(undefined); // a load that failed before reading on still holds an open stream: cancel it
  }
  return { config, tokenizer, processor, model, generationConfig: files.generationConfig };
}
