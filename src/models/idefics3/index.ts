/**
 * The Idefics3 family (transformers `models/idefics3/`): SmolVLM-256M/500M/2.2B-Instruct, Granite-Docling-258M (a
 * SigLIP2-base tower in the same layout, a Llama-typed decoder, tied head). SigLIP tower → pixel-shuffle connector →
 * Llama (or Granite) decoder; the processor splits images into 512-px tiles plus a global frame.
 */
import { WebVLMError } from '../../errors.ts';
import type { ModelFamily } from '../family.ts';
import { idefics3Plan } from './plan.ts';
import { parseIdefics3Config, type Idefics3Config } from './config.ts';
import { Idefics3Processor, parseProcessorConfig } from './processor.ts';
import { Idefics3Model, visionChunkFrames } from './model.ts';

export const idefics3Family: ModelFamily<Idefics3Config> = {
  name: 'idefics3',
  modelTypes: ['idefics3'],
  examples: ['HuggingFaceTB/SmolVLM-256M-Instruct', 'HuggingFaceTB/SmolVLM-500M-Instruct', 'ibm-granite/granite-docling-258M'],
  parseConfig: parseIdefics3Config,
  tensorPlan: idefics3Plan,
  layerCount: (cfg) => cfg.text.numHiddenLayers + cfg.vision.numHiddenLayers,
  createProcessor: (tokenizer, files) =>
    Idefics3Processor.fromFiles(tokenizer, { preprocessorConfig: files.preprocessorConfig, processorConfig: files.processorConfig, modelConfig: files.config }),

  checkConsistency(cfg, tokenizer, processor) {
    const proc = (processor as Idefics3Processor).config;
    if (tokenizer.tokenToId('<image>') !== cfg.imageTokenId) {
      throw new WebVLMError('CorruptCheckpoint', `config.json image_token_id ${cfg.imageTokenId} is not the tokenizer's <image> id ${tokenizer.tokenToId('<image>')}.`);
    }
    if (proc.imageSeqLen !== cfg.vision.numPatches / (cfg.scaleFactor * cfg.scaleFactor)) {
      throw new WebVLMError('CorruptCheckpoint', `processor image_seq_len ${proc.imageSeqLen} does not match the vision tower (${cfg.vision.numPatches} patches / ${cfg.scaleFactor}²).`);
    }
    // The processor cuts images into tiles the vision tower must take whole; any other size fails every image chat.
    const tile = proc.tileSize, side = cfg.vision.imageSize;
    if (tile !== side) {
      throw new WebVLMError('CorruptCheckpoint',
        `preprocessor_config.json max_image_size.longest_edge ${tile} (the image tile) does not match config.json vision_config.image_size ${side} (patch_size ${cfg.vision.patchSize}): the vision tower takes ${side}×${side} tiles.`,
        { details: { file: 'preprocessor_config.json', tileSize: tile, imageSize: side, patchSize: cfg.vision.patchSize } });
    }
  },

  stopTokens: () => ['<end_of_utterance>'],

  // Granite-Docling / SmolDocling answer in DocTags, which are special tokens: their model cards decode with
  // skip_special_tokens=False, or the structure (<doctag>, <otsl>, <fcel>, <nl>, …) is lost.
  keepsSpecialTokens: (tokenizer) => tokenizer.tokenToId('<doctag>') !== undefined,

  framesPerImage(cfg, pre) {
    let frames = 1;
    if (pre) {
      const p = parseProcessorConfig(pre, undefined, undefined);
      frames = p.doImageSplitting ? Math.ceil(p.longestEdge / p.tileSize) ** 2 + 1 : 1;
    }
    // The model encodes an image's frames in chunks (model.ts), so activations scale with the chunk.
    return Math.min(frames, visionChunkFrames(cfg));
  },

  visionActivations(c, frames) {
    // Buffers as in models/siglip.ts and the connector: rows = frames · patches.
    const v = c.vision, t = c.text;
    const rows = frames * v.numPatches;
    const patchVals = 3 * v.patchSize * v.patchSize;
    const bytes = rows * (7 * v.hiddenSize + v.intermediateSize + patchVals) * 4 + (rows / (c.scaleFactor ** 2)) * t.hiddenSize * 4;
    return { bytes, largest: { bytes: rows * v.intermediateSize * 4, what: `vision MLP activations (${frames} frames)` } };
  },

  load: (gpu, cfg, tensors, formats) => Idefics3Model.load(gpu, cfg, tensors, formats),
};
