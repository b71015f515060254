/**
 * The InternVL family: OpenGVLab InternVL3-1B and InternVL2.5-1B (InternViT-300M → pixel shuffle → MLP projector →
 * Qwen2), read from the original layout (`InternVLChatModel`, model_type "internvl_chat") and from transformers'
 * native port (`InternVLForConditionalGeneration`, model_type "internvl", the `-hf` repos). See config.ts for what
 * is refused, plan.ts for the tensors, processor.ts / tiling.ts for the image rules, model.ts for the GPU path.
 */
import { WebVLMError } from '../../errors.ts';
import type { ModelFamily } from '../family.ts';
import { parseInternVLConfig, type InternVLConfig } from './config.ts';
import { internvlLayerCount, internvlPlan } from './plan.ts';
import { IMG_CONTEXT, InternVLProcessor, internvlProcessorConfig } from './processor.ts';
import { internvlChunkFrames, InternVLModel } from './model.ts';

export const internvlFamily: ModelFamily<InternVLConfig> = {
  name: 'internvl',
  modelTypes: ['internvl_chat', 'internvl'],
  examples: ['OpenGVLab/InternVL3-1B', 'OpenGVLab/InternVL2_5-1B', 'OpenGVLab/InternVL3-1B-hf'],
  parseConfig: parseInternVLConfig,
  tensorPlan: internvlPlan,
  layerCount: internvlLayerCount,
  createProcessor: (tokenizer, files, cfg) => new InternVLProcessor(tokenizer, internvlProcessorConfig(cfg, files.preprocessorConfig)),

  checkConsistency(cfg, tokenizer, processor) {
    const id = tokenizer.tokenToId(IMG_CONTEXT);
    if (id !== cfg.imageTokenId) {
      throw new WebVLMError('CorruptCheckpoint', `The tokenizer's ${IMG_CONTEXT} id ${id} is not the model's image token id ${cfg.imageTokenId}${cfg.layout === 'original' ? ' (151667 for a Qwen2 InternVL)' : ' (config.json image_token_id)'}.`);
    }
    const p = (processor as InternVLProcessor).config;
    if (p.imageSeqLen !== cfg.imageSeqLen) throw new WebVLMError('CorruptCheckpoint', `processor ${p.imageSeqLen} tokens per tile, the vision tower gives ${cfg.imageSeqLen}.`);
    if (p.tileSize !== cfg.vision.imageSize) throw new WebVLMError('CorruptCheckpoint', `processor tile ${p.tileSize} is not the vision tower's image_size ${cfg.vision.imageSize}.`);
  },

  stopTokens: () => ['<|im_end|>'],

  framesPerImage(cfg, pre) {
    let max = cfg.tiling?.maxTiles ?? 12;
    if (cfg.layout === 'native' && pre && typeof pre.max_patches === 'number') max = pre.max_patches;
    return Math.min(max > 1 ? max + 1 : 1, internvlChunkFrames(cfg));
  },

  visionActivations(c, frames) {
    const v = c.vision, t = c.text;
    const rows = frames * (v.numPatches + 1), tokens = frames * c.imageSeqLen;
    const patchVals = 3 * v.patchSize * v.patchSize;
    const bytes = rows * (7 * v.hiddenSize + v.intermediateSize + patchVals) * 4 + tokens * (2 * c.connectorInputSize + 2 * t.hiddenSize) * 4;
    return { bytes, largest: { bytes: rows * Math.max(v.intermediateSize, 3 * v.hiddenSize) * 4, what: `vision MLP activations (${frames} frames)` } };
  },

  load: (gpu, cfg, tensors, formats) => InternVLModel.load(gpu, cfg, tensors, formats),
};
