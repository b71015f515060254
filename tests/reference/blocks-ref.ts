/**
 * Float64 reference forwards of the shared blocks, with every option the GPU blocks take (src/models/siglip.ts,
 * src/models/llama.ts), on weights given by role rather than by a checkpoint's names (each family's reference maps
 * its names onto these; idefics3-ref.ts does). The option semantics are transformers':
 *
 * ViT (`vitForwardRef`): SigLIP (`models/siglip/modeling_siglip.py`, Idefics3's copy) by default; InternViT
 * (InternVL `modeling_intern_vit.py`) with a class token (cat([cls, patches]) + positions [P + 1, D], dropped at the
 * output as InternVL's `vit_embeds[:, 1:]`), layer scale (x + branch·ls), exact GELU, no post-norm, and any linear
 * without a bias.
 *
 * Decoder (`decoderForwardRef`): `LlamaModel` + a head; optional projection biases (Llama attention_bias/mlp_bias,
 * Qwen2 q/k/v), RoPE 'linear' / 'dynamic' (`modeling_rope_utils.py`: inv_freq ÷ factor; the NTK base
 * θ·(factor·L/max − (factor − 1))^(hd/(hd−2)) once L = the call's largest position + 1 exceeds max), and Granite's
 * multipliers (`models/granite/modular_granite.py`): inputs_embeds × embedding_multiplier, attention scale =
 * attention_multiplier, residual + branch × residual_multiplier, logits ÷ logits_scaling (GraniteForCausalLM).
 * The RoPE frequencies are rounded to f32 as HF computes them (see idefics3-ref.ts, "Numerics").
 */
import { WebVLMError } from '../../src/errors.ts';
import { applyRope, attention, gelu, geluTanh, layerNorm, linear, rmsNorm, ropeInvFreq, silu, type F64Tensor, type PixelTensor } from './primitives-ref.ts';

type Vec = ArrayLike<number>;
/** A linear layer: weight [out, in] (torch layout), optional bias [out]. */
export interface RefLinear { w: Vec; b?: Vec }
export interface RefNorm { w: Vec; b: Vec }

// ---------------------------------------------------------------------------------------------- ViT

export interface VitRefConfig {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
  hiddenAct: 'gelu_pytorch_tanh' | 'gelu';
  classToken?: boolean;
  layerScale?: boolean;
  postNorm?: boolean;
}

export interface VitRefLayer {
  ln1: RefNorm;
  q: RefLinear; k: RefLinear; v: RefLinear; out: RefLinear;
  ln2: RefNorm;
  fc1: RefLinear; fc2: RefLinear;
  ls1?: Vec; ls2?: Vec;
}

export interface VitRefWeights {
  /** Conv2d [D, C, p, p] + bias [D]. */
  patch: RefLinear;
  /** [P (+1), D] */
  pos: Vec;
  cls?: Vec;
  layers: VitRefLayer[];
  post?: RefNorm;
}

/** pixel values [frames, C, S, S] → hidden states [frames, P, D] (post-norm if any; class token dropped). */
export function vitForwardRef(cfg: VitRefConfig, w: VitRefWeights, pixelValues: PixelTensor): F64Tensor {
  const [frames, C, Hh, Ww] = pixelValues.shape;
  if (pixelValues.shape.length !== 4 || C !== cfg.numChannels || Hh !== cfg.imageSize || Ww !== cfg.imageSize) {
    throw new WebVLMError('ShapeMismatch', `pixel values [${pixelValues.shape}] must be [frames, ${cfg.numChannels}, ${cfg.imageSize}, ${cfg.imageSize}]`);
  }
  if (pixelValues.data.length !== frames * C * Hh * Ww) throw new WebVLMError('ShapeMismatch', 'pixel values length does not match their shape');
  // Conv2d "valid": image_size // p patches a side; trailing pixels a patch does not cover are unread (384 / 14 → 27).
  const D = cfg.hiddenSize, p = cfg.patchSize, n = Math.floor(cfg.imageSize / p), P = n * n;
  const cls = cfg.classToken ? 1 : 0, T = P + cls;
  const kk = C * p * p;
  const patch = new Float64Array(kk);
  const px = pixelValues.data;
  const out = new Float64Array(frames * P * D);
  for (let f = 0; f < frames; f++) {
    // Conv2d(k = stride = p, valid) + bias, flatten(2).transpose(1, 2): patch index ph·n + pw (after the class token).
    const x = new Float64Array(T * D);
    for (let ph = 0; ph < n; ph++) {
      for (let pw = 0; pw < n; pw++) {
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < p; ky++) {
            const src = ((f * C + c) * Hh + ph * p + ky) * Ww + pw * p;
            for (let kx = 0; kx < p; kx++) patch[(c * p + ky) * p + kx] = px[src + kx];
          }
        }
        const t = cls + ph * n + pw;
        for (let d = 0; d < D; d++) {
          let s = w.patch.b ? w.patch.b[d] : 0;
          const wo = d * kk;
          for (let i = 0; i < kk; i++) s += w.patch.w[wo + i] * patch[i];
          x[t * D + d] = s;
        }
      }
    }
    if (cls) for (let d = 0; d < D; d++) x[d] = w.cls![d];
    for (let i = 0; i < T * D; i++) x[i] += w.pos[i];
    let h: Float64Array = x;
    for (const L of w.layers) h = vitLayerRef(cfg, L, h, T);
    if (cfg.postNorm ?? true) h = layerNorm(h, T, D, w.post!.w, w.post!.b, cfg.layerNormEps);
    out.set(h.subarray(cls * D), f * P * D);
  }
  return { shape: [frames, P, D], data: out };
}

function vitLayerRef(cfg: VitRefConfig, L: VitRefLayer, x: Float64Array, T: number): Float64Array {
  const D = cfg.hiddenSize, I = cfg.intermediateSize, eps = cfg.layerNormEps, heads = cfg.numAttentionHeads;
  const lin = (h: Float64Array, l: RefLinear, inDim: number, outDim: number) => linear(h, T, inDim, l.w, outDim, l.b);
  const residual = (r: Float64Array, branch: Float64Array, ls?: Vec) => {
    for (let i = 0; i < r.length; i++) r[i] += ls ? branch[i] * ls[i % D] : branch[i];
  };
  // x + attn(LN1 x) (· ls1): scale head_dim^-0.5, no mask for full tiles.
  const h1 = layerNorm(x, T, D, L.ln1.w, L.ln1.b, eps);
  const q = lin(h1, L.q, D, D), k = lin(h1, L.k, D, D), v = lin(h1, L.v, D, D);
  const a = lin(attention(q, k, v, T, T, heads, heads, D / heads, null), L.out, D, D);
  const r = x.slice();
  residual(r, a, cfg.layerScale ? L.ls1 : undefined);
  // x + fc2(act(fc1(LN2 x))) (· ls2).
  const h2 = layerNorm(r, T, D, L.ln2.w, L.ln2.b, eps);
  const m = lin(h2, L.fc1, D, I);
  const act = cfg.hiddenAct === 'gelu' ? gelu : geluTanh;
  for (let i = 0; i < m.length; i++) m[i] = act(m[i]);
  residual(r, lin(m, L.fc2, I, D), cfg.layerScale ? L.ls2 : undefined);
  return r;
}

// ---------------------------------------------------------------------------------------------- decoder

export type RefRopeScaling = { type: 'default' } | { type: 'linear'; factor: number } | { type: 'dynamic'; factor: number; maxPositions: number };

export interface DecoderRefConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RefRopeScaling;
  attentionScale?: number;
  embeddingMultiplier?: number;
  residualMultiplier?: number;
  logitsDivisor?: number;
}

export interface DecoderRefLayer {
  inputNorm: Vec;
  q: RefLinear; k: RefLinear; v: RefLinear; o: RefLinear;
  postNorm: Vec;
  gate: RefLinear; up: RefLinear; down: RefLinear;
}

export interface DecoderRefWeights {
  layers: DecoderRefLayer[];
  norm: Vec;
  /** [vocab, H] (the token table when tied). */
  head: Vec;
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

/** The inverse frequencies of a forward whose largest position is seqLen − 1 (HF f32 rounding; dynamic base in f64). */
export function refRopeFrequencies(headDim: number, theta: number, scaling: RefRopeScaling | undefined, seqLen: number): Float64Array {
  if (scaling?.type === 'linear') {
    const f = Math.fround(scaling.factor);
    return ropeInvFreq(headDim, theta).map((v) => Math.fround(v / f));
  }
  if (scaling?.type === 'dynamic' && seqLen > scaling.maxPositions) {
    const base = theta * ((scaling.factor * seqLen) / scaling.maxPositions - (scaling.factor - 1)) ** (headDim / (headDim - 2));
    return ropeInvFreq(headDim, base);
  }
  return ropeInvFreq(headDim, theta);
}

/**
 * The decoder over `x` (the S new input rows [S, H], embedded, image features merged; consumed) at positions
 * cache.length…: K/V appended to `cache`, logits [S (or the last `lastRows`), vocab] of the final RMSNorm through the head.
 */
export function decoderForwardRef(cfg: DecoderRefConfig, w: DecoderRefWeights, x: Float64Array, cache: KVCache, lastRows?: number): F64Tensor {
  const H = cfg.hiddenSize, hd = cfg.headDim, nH = cfg.numAttentionHeads, nKv = cfg.numKeyValueHeads, I = cfg.intermediateSize;
  const S = x.length / H, past = cache.length;
  const invFreq = refRopeFrequencies(hd, cfg.ropeTheta, cfg.ropeScaling, past + S);
  const res = cfg.residualMultiplier ?? 1;
  const emb = cfg.embeddingMultiplier ?? 1;
  if (emb !== 1) for (let i = 0; i < x.length; i++) x[i] *= emb;
  const lin = (h: Float64Array, l: RefLinear, inDim: number, outDim: number) => linear(h, S, inDim, l.w, outDim, l.b);
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const L = w.layers[l];
    // x + m·o_proj(attn(RoPE(q), RoPE(k), v)) on RMSNorm(x); K/V appended to the cache after RoPE.
    const h = rmsNorm(x, S, H, L.inputNorm, cfg.rmsNormEps);
    const q = lin(h, L.q, H, nH * hd), k = lin(h, L.k, H, nKv * hd), v = lin(h, L.v, H, nKv * hd);
    for (let i = 0; i < S; i++) {
      applyRope(q, i * nH * hd, nH, hd, past + i, invFreq);
      applyRope(k, i * nKv * hd, nKv, hd, past + i, invFreq);
      cache.k[l].push(k.slice(i * nKv * hd, (i + 1) * nKv * hd));
      cache.v[l].push(v.slice(i * nKv * hd, (i + 1) * nKv * hd));
    }
    const total = past + S;
    const kAll = new Float64Array(total * nKv * hd), vAll = new Float64Array(total * nKv * hd);
    for (let j = 0; j < total; j++) {
      kAll.set(cache.k[l][j], j * nKv * hd);
      vAll.set(cache.v[l][j], j * nKv * hd);
    }
    const a = lin(attention(q, kAll, vAll, S, total, nH, nKv, hd, past, cfg.attentionScale ?? hd ** -0.5), L.o, nH * hd, H);
    for (let i = 0; i < x.length; i++) x[i] += a[i] * res;
    // x + m·down(silu(gate(RMSNorm(x))) · up(RMSNorm(x))).
    const h2 = rmsNorm(x, S, H, L.postNorm, cfg.rmsNormEps);
    const g = lin(h2, L.gate, H, I), u = lin(h2, L.up, H, I);
    for (let i = 0; i < g.length; i++) g[i] = silu(g[i]) * u[i];
    const m = lin(g, L.down, I, H);
    for (let i = 0; i < x.length; i++) x[i] += m[i] * res;
  }
  // The head on the last `lastRows` rows only (default all): the lm_head is most of a small model's work.
  const rows = Math.min(lastRows ?? S, S);
  const hs = rows === S ? x : x.slice((S - rows) * H);
  const normed = rmsNorm(hs, rows, H, w.norm, cfg.rmsNormEps);
  const logits = linear(normed, rows, H, w.head, cfg.vocabSize);
  const div = cfg.logitsDivisor ?? 1;
  if (div !== 1) for (let i = 0; i < logits.length; i++) logits[i] /= div;
  return { shape: [rows, cfg.vocabSize], data: logits };
}
