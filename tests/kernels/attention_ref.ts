/**
 * f64 reference attention, written from the definition (transformers' eager attention + repeat_kv):
 * O[i, h] = Σ_j softmax_j(q[i,h]·k[j,kvh]·scale + mask[i,j]) · v[j,kvh],  kvh = ⌊h / (heads/kvHeads)⌋.
 * Layouts: q/out `[batch, S, heads·hd]`, k/v `[batch, keys, kvHeads·hd]`.
 * Mask: keys ≥ kvLen hidden; causal: query i (absolute position past+i) sees keys ≤ past+i.
 * A query that sees no key gets zeros (the kernels' convention).
 */
export interface AttentionRefArgs {
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
  batch?: number;
  past?: number;
  keys?: number;
  kvLen?: number;
  scale?: number;
}

export function attentionRef(a: AttentionRefArgs): Float64Array {
  const { seqLen: S, heads, kvHeads, headDim: hd, causal } = a;
  const B = a.batch ?? 1, past = a.past ?? 0;
  const keys = a.keys ?? (causal ? past + S : S);
  const kvLen = a.kvLen ?? keys;
  const scale = a.scale ?? 1 / Math.sqrt(hd);
  const group = heads / kvHeads;
  const out = new Float64Array(B * S * heads * hd);
  const scores = new Float64Array(keys);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < S; i++)
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const qo = (b * S + i) * heads * hd + h * hd;
        const last = Math.min(kvLen, causal ? past + i + 1 : kvLen);
        let mx = -Infinity;
        for (let j = 0; j < last; j++) {
          const ko = (b * keys + j) * kvHeads * hd + kvh * hd;
          let s = 0;
          for (let d = 0; d < hd; d++) s += a.q[qo + d] * a.k[ko + d];
          scores[j] = s * scale;
          mx = Math.max(mx, scores[j]);
        }
        if (last === 0) continue;
        let z = 0;
        for (let j = 0; j < last; j++) z += (scores[j] = Math.exp(scores[j] - mx));
        for (let j = 0; j < last; j++) {
          const w = scores[j] / z;
          const vo = (b * keys + j) * kvHeads * hd + kvh * hd;
          for (let d = 0; d < hd; d++) out[qo + d] += w * a.v[vo + d];
        }
      }
  return out;
}

/** Rearranges tokens-layout rows `[keys, kvHeads·hd]` into the KV cache layout `[kvHeads, capacity, hd]` (zeros elsewhere). */
export function toCacheLayout(x: Float32Array, keys: number, kvHeads: number, hd: number, capacity: number): Float32Array {
  const c = new Float32Array(kvHeads * capacity * hd);
  for (let j = 0; j < keys; j++)
    for (let h = 0; h < kvHeads; h++)
      for (let d = 0; d < hd; d++) c[(h * capacity + j) * hd + d] = x[j * kvHeads * hd + h * hd + d];
  return c;
}
