/**
 * Float64 primitives of the reference forwards (tests/reference/idefics3-ref.ts, blocks-ref.ts): linear, norms,
 * activations (GELU tanh and exact, SiLU), RoPE, GQA attention, pixel shuffle. Simple loops on typed arrays; every
 * rule follows transformers (see idefics3-ref.ts for the numerics). No GPU, no dependencies.
 */
import { WebVLMError } from '../../src/errors.ts';

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

/**
 * erf in float64 (JavaScript has none): for |x| < 2 the all-positive series
 * erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (2n+1)!! (no cancellation); beyond, 1 − erfc(x) with erfc from its
 * continued fraction. Both to ~1e-16 (checked against tabulated values in the tests).
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 2) return Math.sign(x) * (1 - erfc(a));
  let term = a, sum = a;
  for (let n = 1; n < 200 && term > 1e-18 * sum; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

/** erfc(x) = 1 − erf(x), accurate in both tails (continued fraction by modified Lentz for x ≥ 2). */
export function erfc(x: number): number {
  if (x < 2) return 1 - erf(x);
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  const tiny = 1e-300;
  let f = x, C = x, D = 0;
  for (let n = 1; n < 500; n++) {
    const an = n / 2;
    D = x + an * D;
    D = Math.abs(D) < tiny ? tiny : D;
    C = x + an / C;
    C = Math.abs(C) < tiny ? tiny : C;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** HF `gelu` (exact): x·Φ(x) = 0.5·x·erfc(−x/√2), accurate for large negative x too. */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x / Math.SQRT2);
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * Default RoPE inverse frequencies, rounded as HF computes them in f32:
 * inv_freq = 1 / θ^(arange(0, hd, 2).float() / hd).
 */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  // θ as a float32 too: torch's `base ** tensor` computes in the tensor's dtype (matters for a dynamic-NTK base).
  const f = new Float64Array(headDim / 2);
  const t = Math.fround(theta);
  for (let i = 0; i < headDim / 2; i++) f[i] = Math.fround(1 / Math.fround(t ** Math.fround((2 * i) / headDim)));
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
 * Scaled dot-product attention with GQA, f64 softmax; `scale` defaults to hd^-0.5 (Granite: attention_multiplier). q [Sq, nH·hd], k/v [Sk, nKv·hd] → [Sq, nH·hd].
 * causalOffset = null: no mask (vision). A number p: query row i sits at absolute position p + i and sees keys 0..p+i.
 */
export function attention(
  q: Float64Array, k: Float64Array, v: Float64Array, sq: number, sk: number,
  nH: number, nKv: number, hd: number, causalOffset: number | null, scale = hd ** -0.5,
): Float64Array {
  const out = new Float64Array(sq * nH * hd);
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

/** First index of the maximum (torch.argmax picks the first on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
