/**
 * Float64 reference of InternVL (both layouts), written from the upstream sources:
 * - OpenGVLab/InternVL `modeling_intern_vit.py` (InternVisionEmbeddings: cat([class_embedding, patches]) +
 *   position_embedding — interpolated bicubically to the grid, the identity at the trained size; InternAttention:
 *   `qkv` reshaped (B, N, 3, heads, hd), so rows q | k | v; InternVisionEncoderLayer: x + attn(norm1 x)·ls1,
 *   x + mlp(norm2 x)·ls2 with exact GELU; no final norm) and `modeling_internvl_chat.py` (extract_feature:
 *   `vit_embeds[:, 1:]`, reshape to √P × √P, `pixel_shuffle` v2, `mlp1`; generate: `input_embeds[selected] =
 *   vit_embeds`; the LM is Qwen2ForCausalLM);
 * - transformers `models/internvl/modeling_internvl.py` for the native layout (the same math under other names:
 *   q/k/v split, lambda_1/2, layernorm_before/after, `vision_tower.layernorm` only without mean pooling,
 *   `multi_modal_projector`), `models/qwen2/modeling_qwen2.py` for the decoder (q/k/v bias, o_proj without).
 * The ViT and decoder bodies are the shared f64 blocks (blocks-ref.ts: their InternViT and Qwen2 options); what is
 * InternVL's own is here: the name mapping, the pixel shuffle as the literal view/permute sequence (not the closed
 * form the GPU kernel uses), the projector and the merge.
 */
import { WebVLMError } from '../../src/errors.ts';
import type { InternVLConfig } from '../../src/models/internvl/config.ts';
import { decoderForwardRef, KVCache, vitForwardRef, type DecoderRefLayer, type DecoderRefWeights, type RefLinear, type VitRefLayer, type VitRefWeights } from './blocks-ref.ts';
import { argmax, gelu, layerNorm, linear, type F64Tensor, type PixelTensor, type WeightMap } from './primitives-ref.ts';

export { argmax, KVCache, type WeightMap };

/** InternVL's `pixel_shuffle(x, 0.5)` with ps_version v2, as the four view/permute steps on [n, w, h, c]. */
export function internvlPixelShuffle(x: Float64Array, n: number, side: number, c: number): Float64Array {
  const sf = 0.5;
  // x.view(n, w, h·sf, c/sf): a pure reinterpretation of the contiguous buffer (no data movement).
  const w = side, h = side, h2 = h * sf, c2 = c / sf;
  // permute(0, 2, 1, 3): [n, w, h2, c2] → [n, h2, w, c2].
  const p1 = new Float64Array(x.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < w; i++) for (let j = 0; j < h2; j++) for (let k = 0; k < c2; k++)
    p1[((b * h2 + j) * w + i) * c2 + k] = x[((b * w + i) * h2 + j) * c2 + k];
  // view(n, h2, w·sf, c/(sf²)): reinterpretation; then (v2) permute(0, 2, 1, 3): [n, h2, w2, c4] → [n, w2, h2, c4].
  const w2 = w * sf, c4 = c / (sf * sf);
  const out = new Float64Array(x.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < h2; i++) for (let j = 0; j < w2; j++) for (let k = 0; k < c4; k++)
    out[((b * w2 + j) * h2 + i) * c4 + k] = p1[((b * h2 + i) * w2 + j) * c4 + k];
  return out;
}

function get(w: WeightMap, name: string): Float32Array {
  const t = w.get(name);
  if (!t) throw new WebVLMError('CorruptCheckpoint', `reference: missing tensor ${name}`);
  return t.data;
}
const rows = (a: Float32Array, r0: number, n: number, cols: number) => a.subarray(r0 * cols, (r0 + n) * cols);

export class InternVLReference {
  readonly vision: VitRefWeights;
  readonly proj: { norm: { w: Float32Array; b: Float32Array }; l1: RefLinear; l2: RefLinear };
  readonly text: DecoderRefWeights;
  readonly embed: Float32Array;

  constructor(readonly cfg: InternVLConfig, weights: WeightMap) {
    const v = cfg.vision, t = cfg.text, D = v.hiddenSize, g = (n: string) => get(weights, n);
    const orig = cfg.layout === 'original';
    const lin = (p: string, bias = true): RefLinear => ({ w: g(`${p}.weight`), b: bias ? g(`${p}.bias`) : undefined });
    const layers: VitRefLayer[] = [];
    for (let l = 0; l < v.numHiddenLayers; l++) {
      const P = orig ? `vision_model.encoder.layers.${l}.` : `vision_tower.encoder.layer.${l}.`;
      let q: RefLinear, k: RefLinear, vv: RefLinear;
      if (orig) {
        const W = g(`${P}attn.qkv.weight`), B = v.qkvBias ? g(`${P}attn.qkv.bias`) : undefined;
        [q, k, vv] = [0, 1, 2].map((j) => ({ w: rows(W, j * D, D, D), b: B ? B.subarray(j * D, (j + 1) * D) : undefined }));
      } else {
        [q, k, vv] = ['q', 'k', 'v'].map((x) => lin(`${P}attention.${x}_proj`, v.qkvBias));
      }
      const norm = (p: string) => ({ w: g(`${P}${p}.weight`), b: g(`${P}${p}.bias`) });
      layers.push({
        ln1: norm(orig ? 'norm1' : 'layernorm_before'), q, k, v: vv, out: lin(`${P}${orig ? 'attn.proj' : 'attention.projection_layer'}`),
        ln2: norm(orig ? 'norm2' : 'layernorm_after'), fc1: lin(`${P}mlp.fc1`), fc2: lin(`${P}mlp.fc2`),
        ls1: g(`${P}${orig ? 'ls1' : 'lambda_1'}`), ls2: g(`${P}${orig ? 'ls2' : 'lambda_2'}`),
      });
    }
    const E = orig ? 'vision_model.embeddings.' : 'vision_tower.embeddings.';
    this.vision = {
      patch: lin(`${E}${orig ? 'patch_embedding' : 'patch_embeddings.projection'}`), pos: g(`${E}${orig ? 'position_embedding' : 'position_embeddings'}`),
      cls: g(`${E}${orig ? 'class_embedding' : 'cls_token'}`), layers,
      post: v.postNorm ? { w: g('vision_tower.layernorm.weight'), b: g('vision_tower.layernorm.bias') } : undefined,
    };
    const M = orig ? ['mlp1.0', 'mlp1.1', 'mlp1.3'] : ['multi_modal_projector.layer_norm', 'multi_modal_projector.linear_1', 'multi_modal_projector.linear_2'];
    this.proj = { norm: { w: g(`${M[0]}.weight`), b: g(`${M[0]}.bias`) }, l1: lin(M[1]), l2: lin(M[2]) };
    const TP = 'language_model.model.';
    this.embed = g(`${TP}embed_tokens.weight`);
    const tl: DecoderRefLayer[] = [];
    for (let l = 0; l < t.numHiddenLayers; l++) {
      const P = `${TP}layers.${l}.`;
      tl.push({
        inputNorm: g(`${P}input_layernorm.weight`), postNorm: g(`${P}post_attention_layernorm.weight`),
        q: lin(`${P}self_attn.q_proj`), k: lin(`${P}self_attn.k_proj`), v: lin(`${P}self_attn.v_proj`), o: lin(`${P}self_attn.o_proj`, false),
        gate: lin(`${P}mlp.gate_proj`, false), up: lin(`${P}mlp.up_proj`, false), down: lin(`${P}mlp.down_proj`, false),
      });
    }
    this.text = { layers: tl, norm: g(`${TP}norm.weight`), head: t.tieWordEmbeddings ? this.embed : g('language_model.lm_head.weight') };
  }

  /** pixel values [frames, 3, S, S] → features [frames · seq, H]. */
  imageFeatures(px: PixelTensor): F64Tensor {
    const v = this.cfg.vision, frames = px.shape[0], D = v.hiddenSize, side = v.patchesPerSide;
    const hidden = vitForwardRef({ ...v, classToken: true, layerScale: true, postNorm: v.postNorm }, this.vision, px);
    const shuffled = internvlPixelShuffle(hidden.data, frames, side, D);
    const n = frames * this.cfg.imageSeqLen, C4 = this.cfg.connectorInputSize, H = this.cfg.text.hiddenSize;
    // mlp1: LayerNorm (nn.LayerNorm default eps 1e-5) → Linear → GELU (exact) → Linear.
    const normed = layerNorm(shuffled, n, C4, this.proj.norm.w, this.proj.norm.b, 1e-5);
    const mid = linear(normed, n, C4, this.proj.l1.w, H, this.proj.l1.b);
    for (let i = 0; i < mid.length; i++) mid[i] = gelu(mid[i]);
    return { shape: [n, H], data: linear(mid, n, H, this.proj.l2.w, H, this.proj.l2.b) };
  }

  private embedRows(ids: ArrayLike<number>, features?: F64Tensor): Float64Array {
    const H = this.cfg.text.hiddenSize, x = new Float64Array(ids.length * H);
    let f = 0;
    for (let s = 0; s < ids.length; s++) {
      if (features && ids[s] === this.cfg.imageTokenId) x.set(features.data.subarray(f * H, ++f * H), s * H);
      else for (let d = 0; d < H; d++) x[s * H + d] = this.embed[ids[s] * H + d];
    }
    if (features && f * H !== features.data.length) throw new WebVLMError('InvalidArgument', `reference: ${f} image tokens for ${features.data.length / H} feature rows`);
    return x;
  }

  textForward(ids: ArrayLike<number>, features: F64Tensor | undefined, cache = new KVCache(this.cfg.text.numHiddenLayers), lastRows?: number): { logits: F64Tensor; cache: KVCache } {
    const logits = decoderForwardRef({ ...this.cfg.text, ropeScaling: this.cfg.text.ropeScaling }, this.text, this.embedRows(ids, features), cache, lastRows);
    return { logits, cache };
  }

  /** Greedy decoding of `steps` tokens after the prompt (features merged into the prefill only). */
  greedy(ids: ArrayLike<number>, px: PixelTensor | undefined, steps: number): number[] {
    const feats = px ? this.imageFeatures(px) : undefined;
    const V = this.cfg.text.vocabSize;
    let { logits, cache } = this.textForward(ids, feats, undefined, 1);
    const out = [argmax(logits.data.subarray(0, V))];
    while (out.length < steps) {
      ({ logits, cache } = this.textForward([out[out.length - 1]], undefined, cache, 1));
      out.push(argmax(logits.data.subarray(0, V)));
    }
    return out;
  }
}
