/**
 * SmolVLM `config.json` (transformers `models/smolvlm/configuration_smolvlm.py`). `SmolVLMConfig` and
 * `SmolVLMVisionConfig` are Idefics3's under new `model_type`s ('smolvlm', 'smolvlm_vision'), with the same keys and
 * the same defaults (vision 1152/3072/12/16/224/32, gelu_pytorch_tanh, ln 1e-6; scale_factor 2; image_token_id
 * 128257; tie_word_embeddings false; text_config a LlamaConfig), so Idefics3's parser reads it. The defaults matter:
 * SmolVLM2's files omit keys at their default value (the 256M/500M `vision_config` has no `intermediate_size` or
 * `num_hidden_layers`: 3072 and 12). What is new here:
 *  - `model_type` must be 'smolvlm', `vision_config.model_type` 'smolvlm_vision' when present;
 *  - `tie_word_embeddings` at the top level and in `text_config` (LlamaConfig default false) must agree: transformers
 *    releases differ in which of the two ties lm_head, so a checkpoint where they disagree means different models to
 *    different releases, and we refuse it rather than guess.
 */
import { WebVLMError } from '../../errors.ts';
import { parseIdefics3Config, type Idefics3Config } from '../idefics3/config.ts';

export interface SmolVLMConfig extends Idefics3Config {
  modelType: 'smolvlm';
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(message: string, details?: Record<string, unknown>): never {
  throw new WebVLMError('UnsupportedModel', `config.json: ${message}`, { details });
}

/** Parse and validate a parsed SmolVLM `config.json`. Throws `WebVLMError('UnsupportedModel')`. */
export function parseSmolVLMConfig(json: unknown): SmolVLMConfig {
  if (!isObject(json)) fail('not a JSON object');
  if (json.model_type !== 'smolvlm') fail(`model_type ${JSON.stringify(json.model_type)} is not supported (expected "smolvlm")`, { modelType: json.model_type });
  const vc = json.vision_config, tc = json.text_config;
  if (isObject(vc) && vc.model_type !== undefined && vc.model_type !== 'smolvlm_vision') {
    fail(`vision_config.model_type ${JSON.stringify(vc.model_type)} is not supported (expected "smolvlm_vision")`);
  }
  if (isObject(tc)) {
    const top = json.tie_word_embeddings ?? false, text = tc.tie_word_embeddings ?? false;
    if (typeof top === 'boolean' && typeof text === 'boolean' && top !== text) {
      fail(`tie_word_embeddings ${top} and text_config.tie_word_embeddings ${text} disagree (transformers releases differ in which one ties lm_head)`);
    }
  }
  // Everything else is Idefics3's schema, read by Idefics3's parser.
  return { ...parseIdefics3Config({ ...json, model_type: 'idefics3' }), modelType: 'smolvlm' };
}
