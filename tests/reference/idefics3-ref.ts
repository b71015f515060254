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

export interface WeightTensor { shape: number[]; data: Float32Array }
export type WeightMap = Map<string, WeightTensor>;
export interface F64Tensor { shape: number[]; data: Float64Array }
/** Pixel values [frames, C, H, W], as the processor produces them (f32), or f64. */
export interface PixelTensor { shape: number[]; data: ArrayLike<number> }

// ---------------------------------------------------------------------------------------------- primitives

/** y[r, o] = Σ_i x[r, i] · W[o, i] + b[o]; W row-major [outDim, inDim] (torch Linear layout). Four f64 partial sums (speed). */
export function linear(x: Float64Array, rows: number, inDim: number, w: ArrayLike<number>, outDim: number, bias?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(rows * outDim);
  const n4 = inDim - (inDim % 4);
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      for (; i < n4; i += 4) {
        s0 += x[xo + i] * w[wo + i];
        s1 += x[xo + i + 1] * w[wo + i + 1];
        s2 += x[xo + i + 2] * w[wo + i + 2];
        s3 += x[xo + i + 3] * w[wo + i + 3];
      }
      for (; i < inDim; i++) s0 += x[xo + i] * w[wo + i];
      const s = s0 + s1 + (s2 + s3);
      y[r * outDim + o] = bias ? s + bias[o] : s;
    }
  }
  return y;
}

/** torch LayerNorm: biased variance, eps inside the sqrt. */
export function layerNorm(x: Float64Array, rows: number, dim: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[o + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[o + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[o + i] = (x[o + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** LlamaRMSNorm: weight · (h · rsqrt(mean(h²) + eps)); no mean subtraction, no bias. */
export function rmsNorm(x: Float64Array, rows: number, dim: number, w: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[o + i] = w[i] * (x[o + i] * inv);
  }
  return y;
}

/** `gelu_pytorch_tanh` = gelu(approximate="tanh"). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * Default RoPE inverse frequencies, rounded as HF computes them in f32:
 * inv_freq = 1 / θ^(arange(0, hd, 2).float() / hd).
 */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const f = new Float64Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) f[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
  return f;
}

/** rotate_half(x) = cat(−x[hd/2:], x[:hd/2]) (half split, not interleaved pairs). */
export function rotateHalf(x: ArrayLike<number>): Float64Array {
  const h = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < h; i++) {
    y[i] = -x[i + h];
    y[i + h] = x[i];
  }
  return y;
}

/**
 * In place on `count` head vectors of `hd` values at `x[offset + k·hd]`, all at `position`:
 * x·cos + rotate_half(x)·sin with emb = cat(freqs, freqs), freqs = f32(position · inv_freq).
 */
export function applyRope(x: Float64Array, offset: number, count: number, hd: number, position: number, invFreq: Float64Array): void {
  const h = hd / 2;
  for (let i = 0; i < h; i++) {
    const angle = Math.fround(position * invFreq[i]);
    const c = Math.cos(angle), s = Math.sin(angle);
    for (let k = 0; k < count; k++) {
      const o = offset + k * hd;
      const a = x[o + i], b = x[o + i + h];
      x[o + i] = a * c - b * s; // x1·cos + (−x2)·sin
      x[o + i + h] = b * c + a * s; // x2·cos + x1·sin
    }
  }
}

/** repeat_kv: query head h reads KV head ⌊h / (nHeads / nKv)⌋ (expand on a new axis after the KV-head axis). */
export function kvHeadFor(h: number, nHeads: number, nKv: number): number {
  return Math.floor(h / (nHeads / nKv));
}

/**
 * Scaled dot-product attention with GQA, f64 softmax. q [Sq, nH·hd], k/v [Sk, nKv·hd] → [Sq, nH·hd].
 * causalOffset = null: no mask (vision). A number p: query row i sits at absolute position p + i and sees keys 0..p+i.
 */
export function attention(
  q: Float64Array, k: Float64Array, v: Float64Array, sq: number, sk: number,
  nH: number, nKv: number, hd: number, causalOffset: number | null,
): Float64Array {
  const out = new Float64Array(sq * nH * hd);
  const scale = hd ** -0.5;
  const scores = new Float64Array(sk);
  for (let h = 0; h < nH; h++) {
    const kh = kvHeadFor(h, nH, nKv);
    for (let i = 0; i < sq; i++) {
      const n = causalOffset === null ? sk : Math.min(sk, causalOffset + i + 1);
      const qo = (i * nH + h) * hd;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const ko = (j * nKv + kh) * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
        s *= scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += scores[j] = Math.exp(scores[j] - max);
      const oo = (i * nH + h) * hd;
      for (let j = 0; j < n; j++) {
        const p = scores[j] / sum;
        const vo = (j * nKv + kh) * hd;
        for (let d = 0; d < hd; d++) out[oo + d] += p * v[vo + d];
      }
    }
  }
  return out;
}

/**
 * Idefics3Connector.pixel_shuffle on `frames` frames of a √seq × √seq grid of `dim` features:
 * out[f, I·(w/s) + J, (di·s + dj)·dim + d] = x[f, (I·s + di)·w + J·s + dj, d].
 * (The test checks this closed form against a literal transcription of HF's view/permute/reshape sequence.)
 */
export function pixelShuffle(x: Float64Array, frames: number, seq: number, dim: number, s: number): Float64Array {
  const side = Math.round(Math.sqrt(seq));
  if (side * side !== seq || side % s !== 0) throw new WebVLMError('ShapeMismatch', `pixel_shuffle needs a square grid divisible by ${s}, got ${seq} patches`);
  const w = side, ws = side / s, outDim = dim * s * s;
  const y = new Float64Array(x.length);
  for (let f = 0; f < frames; f++) {
    const xf = f * seq * dim;
    for (let I = 0; I < side / s; I++) {
      for (let J = 0; J < ws; J++) {
        const yo = xf + (I * ws + J) * outDim;
        for (let di = 0; di < s; di++) {
          for (let dj = 0; dj < s; dj++) {
            const xo = xf + ((I * s + di) * w + J * s + dj) * dim;
            const co = yo + (di * s + dj) * dim;
            for (let d = 0; d < dim; d++) y[co + d] = x[xo + d];
          }
        }
      }
    }
  }
  return y;
}

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

/** KV cache: per text layer, one row [nKv·hd] of K (after RoPE) and V per position. Positions continue from `length`. */
export class KVCache {
  readonly k: Float64Array[][];
  readonly v: Float64Array[][];
  constructor(layers: number) {
    this.k = Array.from({ length: layers }, () => []);
    this.v = Array.from({ length: layers }, () => []);
  }
  get length(): number {
    return this.k[0]?.length ?? 0;
  }
}

export interface TextForwardOptions {
  /** Appended to in place; a fresh cache when absent. Image features are only merged when it is empty (prefill). */
  pastKV?: KVCache;
  /** 'all' (default): logits for every new position; 'last': only for the last one (shape [1, vocab]). */
  logits?: 'all' | 'last';
}

// ---------------------------------------------------------------------------------------------- model

export class Idefics3Reference {
  readonly config: Idefics3Config;
  private readonly w: WeightMap;
  private readonly invFreq: Float64Array;

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
    this.invFreq = ropeInvFreq(cfg.text.headDim, cfg.text.ropeTheta);
  }

  private t(name: string): Float32Array {
    return this.w.get(name)!.data;
  }

  /** pixel values [frames, C, H, W] (full image_size² tiles) → post-layernorm hidden states [frames, patches, D]. */
  visionForward(pixelValues: PixelTensor): F64Tensor {
    const vc = this.config.vision;
    const [frames, C, Hh, Ww] = pixelValues.shape;
    if (pixelValues.shape.length !== 4 || C !== vc.numChannels || Hh !== vc.imageSize || Ww !== vc.imageSize) {
      // Partial tiles (patch masks, bucketized position ids) never occur for SmolVLM's processor; not modelled.
      throw new WebVLMError('ShapeMismatch', `pixel values [${pixelValues.shape}] must be [frames, ${vc.numChannels}, ${vc.imageSize}, ${vc.imageSize}]`);
    }
    if (pixelValues.data.length !== frames * C * Hh * Ww) throw new WebVLMError('ShapeMismatch', 'pixel values length does not match their shape');
    const D = vc.hiddenSize, P = vc.numPatches, p = vc.patchSize, n = vc.patchesPerSide, eps = vc.layerNormEps;
    const out = new Float64Array(frames * P * D);
    const convW = this.t(`${V}embeddings.patch_embedding.weight`), convB = this.t(`${V}embeddings.patch_embedding.bias`);
    const pos = this.t(`${V}embeddings.position_embedding.weight`);
    const px = pixelValues.data;
    const kk = C * p * p;
    const patch = new Float64Array(kk);
    for (let f = 0; f < frames; f++) {
      // Conv2d(k = stride = p, valid) + bias, flatten(2).transpose(1, 2): patch index ph·n + pw;
      // + position_embedding(identity ids) for a full tile.
      const x = new Float64Array(P * D);
      for (let ph = 0; ph < n; ph++) {
        for (let pw = 0; pw < n; pw++) {
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < p; ky++) {
              const src = ((f * C + c) * Hh + ph * p + ky) * Ww + pw * p;
              for (let kx = 0; kx < p; kx++) patch[(c * p + ky) * p + kx] = px[src + kx];
            }
          }
          const pi = ph * n + pw;
          for (let d = 0; d < D; d++) {
            let s = convB[d];
            const wo = d * kk;
            for (let i = 0; i < kk; i++) s += convW[wo + i] * patch[i];
            x[pi * D + d] = s + pos[pi * D + d];
          }
        }
      }
      let h: Float64Array = x;
      for (let l = 0; l < vc.numHiddenLayers; l++) h = this.encoderLayer(h, l);
      out.set(layerNorm(h, P, D, this.t(`${V}post_layernorm.weight`), this.t(`${V}post_layernorm.bias`), eps), f * P * D);
    }
    return { shape: [frames, P, D], data: out };
  }

  private encoderLayer(x: Float64Array, l: number): Float64Array {
    const vc = this.config.vision;
    const D = vc.hiddenSize, P = vc.numPatches, eps = vc.layerNormEps, I = vc.intermediateSize;
    const p = `${V}encoder.layers.${l}.`;
    const lin = (h: Float64Array, name: string, inDim: number, outDim: number) =>
      linear(h, P, inDim, this.t(`${p}${name}.weight`), outDim, this.t(`${p}${name}.bias`));
    // x + attn(LN1(x)): scale head_dim^-0.5, no mask for full tiles.
    const h1 = layerNorm(x, P, D, this.t(`${p}layer_norm1.weight`), this.t(`${p}layer_norm1.bias`), eps);
    const q = lin(h1, 'self_attn.q_proj', D, D), k = lin(h1, 'self_attn.k_proj', D, D), v = lin(h1, 'self_attn.v_proj', D, D);
    const a = lin(attention(q, k, v, P, P, vc.numAttentionHeads, vc.numAttentionHeads, vc.headDim, null), 'self_attn.out_proj', D, D);
    const r1 = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) r1[i] = x[i] + a[i];
    // x + fc2(gelu_tanh(fc1(LN2(x)))).
    const h2 = layerNorm(r1, P, D, this.t(`${p}layer_norm2.weight`), this.t(`${p}layer_norm2.bias`), eps);
    const m = lin(h2, 'mlp.fc1', D, I);
    for (let i = 0; i < m.length; i++) m[i] = geluTanh(m[i]);
    const o = lin(m, 'mlp.fc2', I, D);
    for (let i = 0; i < r1.length; i++) r1[i] += o[i];
    return r1;
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
   * Llama decoder over `inputIds` (new tokens only when `pastKV` holds earlier ones) → logits [S (or 1), vocab].
   * In the prefill (empty cache) the `<image>` positions take the image features in order (masked_scatter);
   * while decoding an `<image>` id keeps its token embedding (HF: past_seen_tokens == 0 guard).
   */
  textForward(inputIds: ArrayLike<number>, imageFeatures?: F64Tensor | null, opts: TextForwardOptions = {}): { logits: F64Tensor; pastKV: KVCache } {
    const cfg = this.config, tc = cfg.text;
    const S = inputIds.length, H = tc.hiddenSize, hd = tc.headDim, nH = tc.numAttentionHeads, nKv = tc.numKeyValueHeads;
    const cache = opts.pastKV ?? new KVCache(tc.numHiddenLayers);
    const past = cache.length;
    if (S === 0) throw new WebVLMError('InvalidArgument', 'textForward needs at least one token');
    const emb = this.t(`${T}embed_tokens.weight`);
    let x: Float64Array = new Float64Array(S * H);
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
    for (let l = 0; l < tc.numHiddenLayers; l++) {
      const p = `${T}layers.${l}.`;
      // x + o_proj(attn(RoPE(q), RoPE(k), v)) on RMSNorm(x); K/V appended to the cache after RoPE.
      const h = rmsNorm(x, S, H, this.t(`${p}input_layernorm.weight`), tc.rmsNormEps);
      const q = linear(h, S, H, this.t(`${p}self_attn.q_proj.weight`), nH * hd);
      const k = linear(h, S, H, this.t(`${p}self_attn.k_proj.weight`), nKv * hd);
      const v = linear(h, S, H, this.t(`${p}self_attn.v_proj.weight`), nKv * hd);
      for (let i = 0; i < S; i++) {
        applyRope(q, i * nH * hd, nH, hd, past + i, this.invFreq);
        applyRope(k, i * nKv * hd, nKv, hd, past + i, this.invFreq);
        cache.k[l].push(k.slice(i * nKv * hd, (i + 1) * nKv * hd));
        cache.v[l].push(v.slice(i * nKv * hd, (i + 1) * nKv * hd));
      }
      const total = past + S;
      const kAll = new Float64Array(total * nKv * hd), vAll = new Float64Array(total * nKv * hd);
      for (let j = 0; j < total; j++) {
        kAll.set(cache.k[l][j], j * nKv * hd);
        vAll.set(cache.v[l][j], j * nKv * hd);
      }
      const a = linear(attention(q, kAll, vAll, S, total, nH, nKv, hd, past), S, nH * hd, this.t(`${p}self_attn.o_proj.weight`), H);
      for (let i = 0; i < x.length; i++) x[i] += a[i];
      // x + down(silu(gate(RMSNorm(x))) · up(RMSNorm(x))).
      const h2 = rmsNorm(x, S, H, this.t(`${p}post_attention_layernorm.weight`), tc.rmsNormEps);
      const g = linear(h2, S, H, this.t(`${p}mlp.gate_proj.weight`), tc.intermediateSize);
      const u = linear(h2, S, H, this.t(`${p}mlp.up_proj.weight`), tc.intermediateSize);
      for (let i = 0; i < g.length; i++) g[i] = silu(g[i]) * u[i];
      const m = linear(g, S, tc.intermediateSize, this.t(`${p}mlp.down_proj.weight`), H);
      for (let i = 0; i < x.length; i++) x[i] += m[i];
    }
    let rows = S;
    if (opts.logits === 'last') {
      x = x.slice((S - 1) * H);
      rows = 1;
    }
    const normed = rmsNorm(x, rows, H, this.t(`${T}norm.weight`), tc.rmsNormEps);
    const head = cfg.tieWordEmbeddings ? emb : this.t('lm_head.weight');
    return { logits: { shape: [rows, tc.vocabSize], data: linear(normed, rows, H, head, tc.vocabSize) }, pastKV: cache };
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

/** First index of the maximum (torch.argmax picks the first on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function isParsed(c: unknown): c is Idefics3Config {
  return typeof c === 'object' && c !== null && (c as { modelType?: unknown }).modelType === 'idefics3' && 'vision' in c && 'text' in c;
}

/** Convenience: reference from the raw `config.json` object and the weights. */
export function createIdefics3Reference(configJson: unknown, weights: WeightMap): Idefics3Reference {
  return new Idefics3Reference(parseIdefics3Config(configJson), weights);
}
