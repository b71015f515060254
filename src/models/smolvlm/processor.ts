/**
 * The SmolVLM processor (transformers `models/smolvlm/processing_smolvlm.py`, `image_processing_smolvlm.py`). For
 * images it is Idefics3's, rule for rule: the image processor is a copy of `Idefics3ImageProcessor` (same resize
 * chain, 4096 cap, split, normalisation, defaults 4·364 / 364), and the prompt expansion (`_prompt_split_image`,
 * `_prompt_single_image`, the i-th `<image>` gets image i) and the chat template are the same; so this class is
 * Idefics3's with its own files checked. What differs:
 *  - the token strings come from the tokenizer (`image_token`, `fake_image_token`, `global_image_token`,
 *    `end_of_utterance_token`: tokenizer_config `extra_special_tokens`, else Idefics3's strings). SmolVLM2's name
 *    Idefics3's strings; a checkpoint naming others is refused (the expansion writes Idefics3's).
 *  - videos (`<video>` in the template, frames sampled by `video_processing_smolvlm.py`, each a single-image block
 *    after a timestamp line, between an intro and an outro): not implemented. They belong in `processChat` here, with
 *    transformers' video template (`DEFAULT_CHAT_TEMPLATE` of processing_smolvlm.py, which it swaps in when a
 *    conversation holds a video: the checkpoints' own template has no video branch).
 */
import { WebVLMError } from '../../errors.ts';
import type { Tokenizer } from '../../input/tokenizer.ts';
import { Idefics3Processor, parseProcessorConfig } from '../idefics3/processor.ts';

type Json = Record<string, unknown>;
const obj = (x: unknown): Json => {
  const v = typeof x === 'string' ? JSON.parse(x) : x;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
};

/** The tokenizer attributes processing_smolvlm.py reads, with its defaults (the strings our expansion writes). */
export const SMOLVLM_TOKENS = {
  image_token: '<image>',
  fake_image_token: '<fake_token_around_image>',
  global_image_token: '<global-img>',
  end_of_utterance_token: '<end_of_utterance>',
} as const;

/** Image processor classes whose rules are these (the Fast ones are torchvision ports of the same rules; we run the Pillow ones). */
const IMAGE_PROCESSORS = ['SmolVLMImageProcessor', 'SmolVLMImageProcessorFast', 'Idefics3ImageProcessor', 'Idefics3ImageProcessorFast'];
const PROCESSORS = ['SmolVLMProcessor', 'Idefics3Processor'];

function unsupported(message: string, details?: Record<string, unknown>): never {
  throw new WebVLMError('UnsupportedModel', message, { details });
}

/** Refuses processor files whose classes or token strings are not the ones these rules implement. */
export function checkSmolVLMFiles(files: { preprocessorConfig: unknown; processorConfig?: unknown; tokenizerConfig?: unknown }): void {
  const pre = obj(files.preprocessorConfig), proc = obj(files.processorConfig);
  const ip = pre.image_processor_type;
  if (ip !== undefined && !IMAGE_PROCESSORS.includes(ip as string)) {
    unsupported(`preprocessor_config.json image_processor_type ${JSON.stringify(ip)} is not supported (${IMAGE_PROCESSORS.join(', ')}).`, { file: 'preprocessor_config.json', imageProcessorType: ip });
  }
  for (const [file, c] of [['preprocessor_config.json', pre], ['processor_config.json', proc]] as const) {
    if (c.processor_class !== undefined && !PROCESSORS.includes(c.processor_class as string)) {
      unsupported(`${file} processor_class ${JSON.stringify(c.processor_class)} is not supported (${PROCESSORS.join(', ')}).`, { file, processorClass: c.processor_class });
    }
  }
  const tc = obj(files.tokenizerConfig);
  const extra = obj(tc.extra_special_tokens);
  for (const [key, want] of Object.entries(SMOLVLM_TOKENS)) {
    let v = extra[key] ?? tc[key];
    if (typeof v === 'object' && v !== null) v = (v as Json).content; // an AddedToken dict
    if (v !== undefined && v !== want) {
      unsupported(`tokenizer_config.json ${key} ${JSON.stringify(v)} is not supported (the SmolVLM prompt format uses ${want}).`, { file: 'tokenizer_config.json', key, token: v });
    }
  }
}

export class SmolVLMProcessor extends Idefics3Processor {
  static create(tokenizer: Tokenizer, files: { preprocessorConfig: unknown; processorConfig?: unknown; modelConfig?: unknown; tokenizerConfig?: unknown }): SmolVLMProcessor {
    checkSmolVLMFiles(files);
    return new SmolVLMProcessor(tokenizer, parseProcessorConfig(files.preprocessorConfig, files.processorConfig, files.modelConfig));
  }

  override withTokensPerFrame(n: number): SmolVLMProcessor {
    return new SmolVLMProcessor(this.tokenizer, { ...this.config, imageSeqLen: n });
  }
}
