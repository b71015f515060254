/**
 * Float64 reference forward of Idefics3 / SmolVLM (SigLIP vision tower → pixel-shuffle connector → Llama decoder):
 * the oracle end-to-end tests compare the GPU path with. Simple loops on typed arrays, no GPU, no dependencies.
 * Every rule follows transformers (see /work/shared/idefics3-semantics.md): `models/idefics3/modeling_idefics3.py`,
 * `models/llama/modeling_llama.py`, `models/siglip/modeling_siglip.py`.
 *
 * Numerics. transformers runs SmolVLM in its checkpoint dtype (bf16): every matmul output, residual and softmax
 * result is rounded to bf16 (8 mantissa bits); RMSNorm's normalisation, the eager softmax and the RoPE
 * angles/cos/sin are computed in f32 whatever the dtype (so even an HF float64 run keeps those f32 islands).
 * This reference takes the checkpoint values upcast exactly to f64 and computes everything in f64 (sums, norms,
 * softmax, exp/tanh), except that the RoPE inverse frequencies and angles are rounded to f32 as HF computes them
 * (`inv_freq` and `inv_freq ⊗ positions` in f32, autocast off): that rounding is part of what the model means
 * at long positions, and our GPU path computes the angle the same way. So it is the exact-arithmetic model,
 * not a bf16 simulation. Measured on a random tiny model against transformers 5.18 (torch 2.13, eager):
 *  - HF in float64 with its f32 islands switched off (RMSNorm, softmax, RoPE in f64; our RoPE rounding off too):
 *    max |Δlogit| 5e-15 — the semantics are the same, operation for operation;
 *  - stock HF float64: 5e-7 (its f32 islands); stock HF float32: 3e-6 with max |logit| 3.4 (~1e-6 relative);
 *  - greedy ids equal HF `generate(do_sample=False)` (KV cache, 10 tokens).
 * Tolerances: torch f32 fixtures (the tiny model's) must agree within 1e-4 of the logit scale. The GPU f32 path
 * (f32 activations, f32 accumulation, the same upcast weights) should meet |gpu − ref| ≤ 1e-3 · max|ref logit|
 * (relL2 ≲ 1e-4) on the real 30-layer model: f32 rounding (~6e-8) grows through ~60 residual sub-blocks, dot
 * products up to K = 12,288 and softmax over ~1k keys to ~1e-5..1e-4 relative, while an index/layout bug is an
 * O(1) error, so the margin separates bugs from rounding. f16 activations or int4 weights need their own looser
 * budgets (compare with this reference fed the dequantized weights, plus top-k agreement); never compare with
 * HF's bf16 logits element-wise (bf16 differs by ~1e-2 relative): use argmax/top-k agreement there.
 */
import { WebVLMError } from '../../src/errors.ts';
import type { Idefics3Config } from '../../src/models/idefics3/config.ts';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import { argmax, linear, pixelShuffle, type F64Tensor, type PixelTensor, type WeightMap } from './primitives-ref.ts';
import { decoderForwardRef, KVCache, vitForwardRef, type DecoderRefWeights, type VitRefWeights } from './blocks-ref.ts';

// The primitives and the shared blocks live in primitives-ref.ts / blocks-ref.ts; re-exported for existing users.
export {
  applyRope, argmax, attention, erf, erfc, gelu, geluTanh, kvHeadFor, layerNorm, linear, pixelShuffle, rmsNorm, ropeInvFreq, rotateHalf, silu,
  type F64Tensor, type PixelTensor, type WeightMap, type WeightTensor,
} from './primitives-ref.ts';

// ---------------------------------------------------------------------------------------------- weights

const V = 'model.vision_model.';
const T = 'model.text_model.';

/** Every tensor the forward reads, with its HF name and shape (torch layouts: Linear [out, in], Conv2d [out, in, kh, kw]). */
export function expectedWeightShapes(cfg: Idefics3Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const vc = cfg.vision, tc = cfg.text;
  const D = vc.hiddenSize;
  m.set(`${V}embeddings.patch_embedding.weight`, [D, vc.numChannels, vc.patchSize, vc.patchSize]);
  m.set(`${V}embeddings.patch_embedding.bias`, [D]);
  m.set(`${V}embeddings.position_embedding.weight`, [vc.numPatches, D]);
  for (let l = 0; l < vc.numHiddenLayers; l++) {
    const p = `${V}encoder.layers.${l}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      m.set(`${p}self_attn.${n}.weight`, [D, D]);
      m.set(`${p}self_attn.${n}.bias`, [D]);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      m.set(`${p}${n}.weight`, [D]);
      m.set(`${p}${n}.bias`, [D]);
    }
    m.set(`${p}mlp.fc1.weight`, [vc.intermediateSize, D]);
    m.set(`${p}mlp.fc1.bias`, [vc.intermediateSize]);
    m.set(`${p}mlp.fc2.weight`, [D, vc.intermediateSize]);
    m.set(`${p}mlp.fc2.bias`, [D]);
  }
  m.set(`${V}post_layernorm.weight`, [D]);
  m.set(`${V}post_layernorm.bias`, [D]);
  m.set('model.connector.modality_projection.proj.weight', [tc.hiddenSize, cfg.connectorInputSize]);
  const H = tc.hiddenSize, hd = tc.headDim;
  m.set(`${T}embed_tokens.weight`, [tc.vocabSize, H]);
  for (let l = 0; l < tc.numHiddenLayers; l++) {
    const p = `${T}layers.${l}.`;
    m.set(`${p}self_attn.q_proj.weight`, [tc.numAttentionHeads * hd, H]);
    m.set(`${p}self_attn.k_proj.weight`, [tc.numKeyValueHeads * hd, H]);
    m.set(`${p}self_attn.v_proj.weight`, [tc.numKeyValueHeads * hd, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, tc.numAttentionHeads * hd]);
    m.set(`${p}mlp.gate_proj.weight`, [tc.intermediateSize, H]);
    m.set(`${p}mlp.up_proj.weight`, [tc.intermediateSize, H]);
    m.set(`${p}mlp.down_proj.weight`, [H, tc.intermediateSize]);
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
  }
  m.set(`${T}norm.weight`, [H]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [tc.vocabSize, H]);
  return m;
}

export { KVCache };

export interface TextForwardOptions {
  /** Appended to in place; a fresh cache when absent. Image features are only merged when it is empty (prefill). */
  pastKV?: KVCache;
  /** 'all' (default): logits for every new position; 'last': only for the last one (shape [1, vocab]); n: the last n. */
  logits?: 'all' | 'last' | number;
}

// ---------------------------------------------------------------------------------------------- model

export class Idefics3Reference {
  readonly config: Idefics3Config;
  private readonly w: WeightMap;
  private readonly vision: VitRefWeights;
  private readonly decoder: DecoderRefWeights;

  /** `config`: a parsed `Idefics3Config` or the raw `config.json` object. Checks every weight's presence and shape. */
  constructor(config: Idefics3Config | unknown, weights: WeightMap) {
    const cfg = isParsed(config) ? config : parseIdefics3Config(config);
    this.config = cfg;
    this.w = weights;
    for (const [name, shape] of expectedWeightShapes(cfg)) {
      const t = weights.get(name);
      if (!t) throw new WebVLMError('CorruptCheckpoint', `missing tensor ${name}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (t.shape.join(',') !== shape.join(',') || t.data.length !== n) {
        throw new WebVLMError('CorruptCheckpoint', `tensor ${name} has shape [${t.shape}] (${t.data.length} values), expected [${shape}]`);
      }
    }
    // The checkpoint's names onto the blocks' roles (modeling_idefics3.py: SigLIP-style tower, Llama/Granite decoder).
    const lin = (p: string, bias: boolean) => ({ w: this.t(`${p}.weight`), b: bias ? this.t(`${p}.bias`) : undefined });
    const norm = (p: string) => ({ w: this.t(`${p}.weight`), b: this.t(`${p}.bias`) });
    this.vision = {
      patch: lin(`${V}embeddings.patch_embedding`, true),
      pos: this.t(`${V}embeddings.position_embedding.weight`),
      layers: Array.from({ length: cfg.vision.numHiddenLayers }, (_, l) => {
        const P = `${V}encoder.layers.${l}.`;
        return {
          ln1: norm(`${P}layer_norm1`), ln2: norm(`${P}layer_norm2`),
          q: lin(`${P}self_attn.q_proj`, true), k: lin(`${P}self_attn.k_proj`, true), v: lin(`${P}self_attn.v_proj`, true),
          out: lin(`${P}self_attn.out_proj`, true), fc1: lin(`${P}mlp.fc1`, true), fc2: lin(`${P}mlp.fc2`, true),
        };
      }),
      post: norm(`${V}post_layernorm`),
    };
    this.decoder = {
      layers: Array.from({ length: cfg.text.numHiddenLayers }, (_, l) => {
        const P = `${T}layers.${l}.`;
        return {
          inputNorm: this.t(`${P}input_layernorm.weight`), postNorm: this.t(`${P}post_attention_layernorm.weight`),
          q: lin(`${P}self_attn.q_proj`, false), k: lin(`${P}self_attn.k_proj`, false), v: lin(`${P}self_attn.v_proj`, false),
          o: lin(`${P}self_attn.o_proj`, false),
          gate: lin(`${P}mlp.gate_proj`, false), up: lin(`${P}mlp.up_proj`, false), down: lin(`${P}mlp.down_proj`, false),
        };
      }),
      norm: this.t(`${T}norm.weight`),
      head: cfg.tieWordEmbeddings ? this.t(`${T}embed_tokens.weight`) : this.t('lm_head.weight'),
    };
  }

  private t(name: string): Float32Array {
    return this.w.get(name)!.data;
  }

  /** pixel values [frames, C, H, W] (full image_size² tiles) → post-layernorm hidden states [frames, patches, D]. */
  visionForward(pixelValues: PixelTensor): F64Tensor {
    // Partial tiles (patch masks, bucketized position ids) never occur for SmolVLM's processor; not modelled.
    return vitForwardRef(this.config.vision, this.vision, pixelValues);
  }

  /** vision hidden states [frames, patches, D] → image features [frames, imageSeqLen, text hidden]. */
  connector(x: F64Tensor): F64Tensor {
    const [frames, seq, dim] = x.shape;
    const s = this.config.scaleFactor, H = this.config.text.hiddenSize;
    const shuffled = pixelShuffle(x.data, frames, seq, dim, s);
    const rows = frames * (seq / (s * s));
    const y = linear(shuffled, rows, dim * s * s, this.t('model.connector.modality_projection.proj.weight'), H);
    return { shape: [frames, seq / (s * s), H], data: y };
  }

  /**
   * Vision tower + connector, dropping all-zero (padding) frames first as `Idefics3Model.get_image_features` does
   * (`real_images_inds`). Returns null when every frame is padding.
   */
  imageFeatures(pixelValues: PixelTensor): F64Tensor | null {
    const [frames] = pixelValues.shape;
    const per = pixelValues.data.length / Math.max(frames, 1);
    const keep: number[] = [];
    for (let f = 0; f < frames; f++) {
      let any = false;
      for (let i = f * per; i < (f + 1) * per && !any; i++) any = pixelValues.data[i] !== 0;
      if (any) keep.push(f);
    }
    if (!keep.length) return null;
    let pv = pixelValues;
    if (keep.length !== frames) {
      const data = new Float64Array(keep.length * per);
      keep.forEach((f, i) => { for (let j = 0; j < per; j++) data[i * per + j] = pixelValues.data[f * per + j]; });
      pv = { shape: [keep.length, ...pixelValues.shape.slice(1)], data };
    }
    return this.connector(this.visionForward(pv));
  }

  /**
   * Llama (or Granite) decoder over `inputIds` (new tokens only when `pastKV` holds earlier ones) → logits
   * [S (or 1), vocab]. In the prefill (empty cache) the `<image>` positions take the image features in order
   * (masked_scatter); while decoding an `<image>` id keeps its token embedding (HF: past_seen_tokens == 0 guard).
   * Granite's embedding_multiplier then scales the merged rows (GraniteModel.forward); logits_scaling is not applied
   * (Idefics3ForConditionalGeneration's own lm_head).
   */
  textForward(inputIds: ArrayLike<number>, imageFeatures?: F64Tensor | null, opts: TextForwardOptions = {}): { logits: F64Tensor; pastKV: KVCache } {
    const cfg = this.config, tc = cfg.text;
    const S = inputIds.length, H = tc.hiddenSize;
    const cache = opts.pastKV ?? new KVCache(tc.numHiddenLayers);
    const past = cache.length;
    if (S === 0) throw new WebVLMError('InvalidArgument', 'textForward needs at least one token');
    const emb = this.t(`${T}embed_tokens.weight`);
    const x: Float64Array = new Float64Array(S * H);
    for (let i = 0; i < S; i++) {
      const id = inputIds[i];
      if (!Number.isInteger(id) || id < 0 || id >= tc.vocabSize) throw new WebVLMError('InvalidArgument', `token id ${id} at ${i} is outside the vocabulary`);
      for (let d = 0; d < H; d++) x[i * H + d] = emb[id * H + d];
    }
    if (imageFeatures) {
      if (past !== 0) throw new WebVLMError('InvalidArgument', 'image features can only be merged in the prefill (empty KV cache)');
      if (imageFeatures.shape[imageFeatures.shape.length - 1] !== H) throw new WebVLMError('ShapeMismatch', `image features width ${imageFeatures.shape.at(-1)} != text hidden ${H}`);
      const rows = imageFeatures.data.length / H;
      let r = 0;
      for (let i = 0; i < S; i++) {
        if (inputIds[i] !== cfg.imageTokenId) continue;
        if (r < rows) x.set(imageFeatures.data.subarray(r * H, (r + 1) * H), i * H);
        r++;
      }
      if (r !== rows) throw new WebVLMError('ShapeMismatch', `image features and image tokens do not match: ${r} <image> tokens, ${rows} feature rows`);
    }
    // The text config is the decoder config (logitsDivisor unset: logits_scaling is not Idefics3's).
    const rows = opts.logits === 'last' ? 1 : typeof opts.logits === 'number' ? opts.logits : S;
    const logits = decoderForwardRef(tc, this.decoder, x, cache, rows);
    return { logits, pastKV: cache };
  }

  /** Full forward (no cache): logits [S, vocab] for `inputIds` with the images of `pixelValues` merged. */
  forward(inputIds: ArrayLike<number>, pixelValues?: PixelTensor | null): F64Tensor {
    const feats = pixelValues ? this.imageFeatures(pixelValues) : null;
    return this.textForward(inputIds, feats).logits;
  }

  /**
   * Greedy decoding with the KV cache: prefill `inputIds` (+ images), then one token at a time. Returns the new
   * ids only, including the EOS id when one ends the run (as HF generate does). Ties go to the lowest id (torch.argmax).
   */
  greedy(inputIds: ArrayLike<number>, pixelValues: PixelTensor | null, maxNew: number, eosIds: readonly number[] = []): number[] {
    return this.greedyWithFeatures(inputIds, pixelValues ? this.imageFeatures(pixelValues) : null, maxNew, eosIds);
  }

  /** `greedy` with the image features already computed (`imageFeatures` / `connector` output). */
  greedyWithFeatures(inputIds: ArrayLike<number>, feats: F64Tensor | null, maxNew: number, eosIds: readonly number[] = []): number[] {
    const out: number[] = [];
    let { logits, pastKV } = this.textForward(inputIds, feats, { logits: 'last' });
    for (let step = 0; step < maxNew; step++) {
      const next = argmax(logits.data);
      out.push(next);
      if (eosIds.includes(next) || step === maxNew - 1) break;
      ({ logits, pastKV } = this.textForward([next], null, { pastKV, logits: 'last' }));
    }
    return out;
  }
}

function isParsed(c: unknown): c is Idefics3Config {
  return typeof c === 'object' && c !== null && (c as { modelType?: unknown }).modelType === 'idefics3' && 'vision' in c && 'text' in c;
}

/** Convenience: reference from the raw `config.json` object and the weights. */
export function createIdefics3Reference(configJson: unknown, weights: WeightMap): Idefics3Reference {
  return new Idefics3Reference(parseIdefics3Config(configJson), weights);
}
