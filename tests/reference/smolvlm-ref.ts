/**
 * Float64 reference of SmolVLM (transformers `models/smolvlm/modeling_smolvlm.py`, generated from modular_smolvlm.py).
 * The math is Idefics3's: `SmolVLMVisionEmbeddings` / `SmolVLMEncoder` / `SmolVLMVisionTransformer` / `SmolVLMConnector`
 * are copies of Idefics3's (SigLIP tower with bucketized positions — the identity on full tiles —, pixel shuffle,
 * bias-free projection), the text model is `AutoModel.from_config(text_config)` (Llama), lm_head untied by default.
 * So this is `Idefics3Reference` (idefics3-ref.ts) plus what SmolVLM writes differently:
 *
 * `SmolVLMModel.inputs_merger`: instead of `masked_scatter`, position i of the n-th `<image>` token (n counted over
 * the sequence) takes `image_hidden_states[block_offset + (n − 1) // T, (n − 1) % T]` with T the tokens of a frame,
 * after refusing a sequence whose `<image>` count is not a multiple of T. For one sequence (block_offset 0) that is
 * feature row n − 1: the same rows in the same order as Idefics3; `mergeRows` below is that rule written out, and
 * the forward asserts it is the identity before handing over to Idefics3's text forward.
 *
 * Also SmolVLM's: the merge runs whenever image features are passed (no `past_seen_tokens == 0` guard); generation
 * passes pixel values at the first step only, so decoding never merges (as the Idefics3 reference's `textForward`).
 */
import { WebVLMError } from '../../src/errors.ts';
import { parseSmolVLMConfig, type SmolVLMConfig } from '../../src/models/smolvlm/config.ts';
import type { Idefics3Config } from '../../src/models/idefics3/config.ts';
import { Idefics3Reference, type F64Tensor, type KVCache, type TextForwardOptions, type WeightMap } from './idefics3-ref.ts';

/**
 * `inputs_merger`'s indexing for one sequence: for each position, the flat feature row (block · T + local) it takes,
 * or −1. Throws as transformers does when the `<image>` count is not a multiple of `tokensPerFrame`.
 */
export function mergeRows(inputIds: ArrayLike<number>, imageTokenId: number, tokensPerFrame: number): Int32Array {
  let count = 0;
  for (let i = 0; i < inputIds.length; i++) if (inputIds[i] === imageTokenId) count++;
  if (count % tokensPerFrame !== 0) throw new WebVLMError('ShapeMismatch', 'At least one sample has <image> tokens not divisible by patch_size.');
  const rows = new Int32Array(inputIds.length).fill(-1);
  let rowCum = 0;
  for (let i = 0; i < inputIds.length; i++) {
    if (inputIds[i] !== imageTokenId) continue;
    rowCum++; // image_mask.cumsum(-1)
    const block = Math.floor((rowCum - 1) / tokensPerFrame), local = (rowCum - 1) % tokensPerFrame; // block_offset = 0
    rows[i] = block * tokensPerFrame + local;
  }
  return rows;
}

export class SmolVLMReference extends Idefics3Reference {
  readonly smolvlm: SmolVLMConfig;

  /** `config`: a parsed `SmolVLMConfig` or the raw config.json object. */
  constructor(config: SmolVLMConfig | unknown, weights: WeightMap) {
    const cfg = (config as { modelType?: unknown })?.modelType === 'smolvlm' ? (config as SmolVLMConfig) : parseSmolVLMConfig(config);
    // Idefics3Reference takes an Idefics3-typed config; the architecture (every shape it reads) is the same.
    super({ ...cfg, modelType: 'idefics3' } satisfies Idefics3Config, weights);
    this.smolvlm = cfg;
  }

  override textForward(inputIds: ArrayLike<number>, imageFeatures?: F64Tensor | null, opts: TextForwardOptions = {}): { logits: F64Tensor; pastKV: KVCache } {
    if (imageFeatures) {
      const H = this.config.text.hiddenSize;
      // Per frame: [frames, T, H] from `connector`; a flat [rows, H] (compressed features) is one block of its rows.
      const T = imageFeatures.shape.length === 3 ? imageFeatures.shape[1] : imageFeatures.data.length / H;
      const rows = mergeRows(inputIds, this.config.imageTokenId, T);
      let n = 0;
      for (let i = 0; i < rows.length; i++) {
        if (rows[i] < 0) continue;
        if (rows[i] !== n++) throw new WebVLMError('Internal', `inputs_merger row ${rows[i]} at position ${i} is not the next row: the merge order would differ from Idefics3's`);
      }
    }
    return super.textForward(inputIds, imageFeatures, opts);
  }
}
