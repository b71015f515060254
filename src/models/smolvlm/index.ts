/**
 * The SmolVLM family (transformers `models/smolvlm/`, config.json `model_type: "smolvlm"`,
 * `SmolVLMForConditionalGeneration`): SmolVLM2-256M/500M-Video-Instruct and SmolVLM2-2.2B-Instruct. It is the
 * Idefics3 architecture: `SmolVLMForConditionalGeneration` saves the tensors Idefics3's does (`model.vision_model`,
 * `model.connector.modality_projection.proj`, `model.text_model`, `lm_head`) and runs the same math (modeling_smolvlm.py
 * is generated from Idefics3's; its `inputs_merger` fills the image-token positions with the frames' features in order,
 * as `masked_scatter` does, and refuses a count that is not a multiple of a frame's tokens, where ours requires equality).
 * So the tensor plan, model, memory figures and consistency checks are Idefics3's; new here are the config's
 * model_type and tie check (config.ts) and the processor's file checks (processor.ts, where videos will go).
 */
import { WebVLMError } from '../../errors.ts';
import type { ModelFamily } from '../family.ts';
import { idefics3Family } from '../idefics3/index.ts';
import { parseSmolVLMConfig, type SmolVLMConfig } from './config.ts';
import { SmolVLMProcessor } from './processor.ts';

export const smolvlmFamily: ModelFamily<SmolVLMConfig> = {
  name: 'smolvlm',
  modelTypes: ['smolvlm'],
  examples: ['HuggingFaceTB/SmolVLM2-256M-Video-Instruct', 'HuggingFaceTB/SmolVLM2-500M-Video-Instruct', 'HuggingFaceTB/SmolVLM2-2.2B-Instruct'],
  parseConfig: parseSmolVLMConfig,
  tensorPlan: (cfg) => idefics3Family.tensorPlan(cfg),
  layerCount: (cfg) => idefics3Family.layerCount(cfg),
  createProcessor: (tokenizer, files) =>
    SmolVLMProcessor.create(tokenizer, { preprocessorConfig: files.preprocessorConfig, processorConfig: files.processorConfig, modelConfig: files.config, tokenizerConfig: files.tokenizerConfig }),

  checkConsistency(cfg, tokenizer, processor) {
    idefics3Family.checkConsistency(cfg, tokenizer, processor);
    // The end of a turn (the chat template's `<end_of_utterance>`) must be a token, or generation never stops on it.
    if (tokenizer.tokenToId('<end_of_utterance>') === undefined) {
      throw new WebVLMError('CorruptCheckpoint', 'tokenizer.json has no <end_of_utterance> token, which ends every SmolVLM turn.');
    }
  },

  stopTokens: (cfg) => idefics3Family.stopTokens(cfg),
  framesPerImage: (cfg, pre) => idefics3Family.framesPerImage(cfg, pre),
  visionActivations: (cfg, frames) => idefics3Family.visionActivations(cfg, frames),
  load: (gpu, cfg, tensors, formats) => idefics3Family.load(gpu, cfg, tensors, formats),
};
