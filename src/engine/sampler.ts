/**
 * Next-token choice from logits, with Hugging Face `generate` semantics:
 * repetition penalty (seen tokens: logit / p if positive, · p if negative) → temperature → top-k → top-p
 * (smallest set whose probability reaches p, always at least one token) → draw with a seeded RNG.
 * temperature 0 (default) is greedy: argmax after the repetition penalty, lowest index on ties.
 * NaN or +∞ logits are a `NumericalError` (the forward pass broke), never a silent token.
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
  const num = (v: unknown): v is number => typeof v === 'number';
  if (p.temperature !== undefined && !(num(p.temperature) && p.temperature >= 0 && Number.isFinite(p.temperature))) bad(`temperature ${String(p.temperature)} (must be ≥ 0)`);
  if (p.topK !== undefined && !(num(p.topK) && Number.isInteger(p.topK) && p.topK >= 0)) bad(`topK ${String(p.topK)} (must be an integer ≥ 0; 0 = off)`);
  if (p.topP !== undefined && !(num(p.topP) && p.topP > 0 && p.topP <= 1)) bad(`topP ${String(p.topP)} (must be in (0, 1])`);
  if (p.repetitionPenalty !== undefined && !(num(p.repetitionPenalty) && p.repetitionPenalty > 0 && Number.isFinite(p.repetitionPenalty))) {
    bad(`repetitionPenalty ${String(p.repetitionPenalty)} (must be > 0)`);
  }
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
    throw new WebVLMError('NumericalError', 'The model produced no finite logit (NaN/−∞ everywhere).');
  }
  return best;
}

/** NaN or +∞ logits mean the forward pass broke: a typed error, never a token picked from garbage. */
export function requireFinite(logits: ArrayLike<number>): void {
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v !== v || v === Infinity) {
      throw new WebVLMError('NumericalError', `The model produced a non-finite logit (${v} for token ${i}).`, { details: { token: i } });
    }
  }
}

/** Chooses the next token. `logits` is modified (penalty, temperature). */
export function sampleToken(logits: Float32Array, params: SamplingParams, seen: Iterable<number>, rng: Rng): number {
  requireFinite(logits);
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
  // Scale the differences from the best logit, not the logits: l / t overflows to ±∞ for a tiny t (Number.MIN_VALUE
  // made every candidate ∞ − ∞ = NaN and picked the least likely). (l − max) / t ≤ 0 stays ordered as t → 0, so the
  // distribution tends to greedy (ties shared), and is monotone in t.
  const max = logits[cand[0]];
  const probs = cand.map((i) => Math.exp((logits[i] - max) / t));
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
