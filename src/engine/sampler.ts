/**
 * Next-token choice from logits, with Hugging Face `generate` semantics:
 * repetition penalty (seen tokens: logit / p if positive, · p if negative) → temperature → top-k → top-p
 * (smallest set whose probability reaches p, always at least one token) → draw with a seeded RNG.
 * temperature 0 (default) is greedy: argmax after the repetition penalty, lowest index on ties.
 * NaN logits never win: they are treated as −∞ (and an all-NaN row is an error, not a silent token).
 */
import { WebVLMError } from '../errors.ts';
import type { Rng } from './rng.ts';

export interface SamplingParams {
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
}

export function validateSampling(p: SamplingParams): void {
  const bad = (what: string) => {
    throw new WebVLMError('InvalidArgument', `Invalid sampling option: ${what}.`);
  };
  if (p.temperature !== undefined && !(p.temperature >= 0 && Number.isFinite(p.temperature))) bad(`temperature ${p.temperature} (must be ≥ 0)`);
  if (p.topK !== undefined && !(Number.isInteger(p.topK) && p.topK >= 0)) bad(`topK ${p.topK} (must be an integer ≥ 0; 0 = off)`);
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) bad(`topP ${p.topP} (must be in (0, 1])`);
  if (p.repetitionPenalty !== undefined && !(p.repetitionPenalty > 0 && Number.isFinite(p.repetitionPenalty))) bad(`repetitionPenalty ${p.repetitionPenalty} (must be > 0)`);
}

export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const v = logits[id];
    logits[id] = v > 0 ? v / penalty : v * penalty;
  }
}

export function argmax(logits: ArrayLike<number>): number {
  let best = -1, bv = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  if (best < 0) {
    // All NaN or −∞: the forward pass broke; never return a made-up token.
    throw new WebVLMError('Internal', 'The model produced no finite logit (NaN/−∞ everywhere).');
  }
  return best;
}

/** Chooses the next token. `logits` is modified (penalty, temperature). */
export function sampleToken(logits: Float32Array, params: SamplingParams, seen: Iterable<number>, rng: Rng): number {
  applyRepetitionPenalty(logits, seen, params.repetitionPenalty ?? 1);
  const t = params.temperature ?? 0;
  if (t === 0) return argmax(logits);
  // Candidates sorted by logit (descending), NaN excluded.
  const idx: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] > -Infinity) idx.push(i);
  if (!idx.length) return argmax(logits);
  idx.sort((a, b) => logits[b] - logits[a] || a - b);
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, idx.length) : idx.length;
  const cand = idx.slice(0, k);
  const max = logits[cand[0]] / t;
  const probs = cand.map((i) => Math.exp(logits[i] / t - max));
  const total = probs.reduce((a, b) => a + b, 0);
  let keep = cand.length;
  const topP = params.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    for (let j = 0; j < cand.length; j++) {
      acc += probs[j] / total;
      if (acc >= topP) {
        keep = j + 1;
        break;
      }
    }
  }
  const kept = probs.slice(0, keep);
  const sum = kept.reduce((a, b) => a + b, 0);
  let u = rng.next() * sum;
  for (let j = 0; j < keep; j++) {
    u -= kept[j];
    if (u < 0) return cand[j];
  }
  return cand[keep - 1];
}
