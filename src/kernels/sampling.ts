/**
 * Next-token selection on the GPU (shaders/sampling.wgsl). Both ops write one u32 token id per row into
 * `out`, so decoding reads back 4 bytes per token instead of the logits.
 *
 * - `argmax`: greedy decoding. Ties → lowest index (torch.argmax's choice). NaN logits are skipped (torch
 *   would return the NaN's index); a row of NaN only gives `SAMPLE_NONE` so the engine can report a broken
 *   forward pass.
 * - `sample`: HF's sampling chain, reproducible from one uniform number `u ∈ [0, 1)` per row supplied by the
 *   engine's seeded RNG: repetition penalty → / temperature → top-k → top-p → pick the first kept token
 *   (in descending-probability order, ties by lower index) whose cumulative probability exceeds u · (kept mass).
 *   That inverse-CDF rule replaces torch.multinomial (whose stream cannot be reproduced anyway).
 *
 * Repetition penalty (HF RepetitionPenaltyLogitsProcessor): tokens marked in a per-row bitmask `seen`
 * (u32 words, bit v & 31 of word v >> 5, ⌈V/32⌉ words per row; build it with `buildSeenMask`) have their logit
 * divided by `penalty` when ≥ 0 and multiplied by it when negative. HF penalises every token of input_ids,
 * prompt included, so the engine marks the prompt once and passes `markSeen: true` while decoding: the kernel
 * then sets the chosen token's bit itself. Applies to argmax too (HF applies it to greedy search as well).
 *
 * Approximations (exact elsewhere):
 * - At most `SAMPLE_MAX_K` = 256 candidates: top_k > 256 acts as 256, and with top-k off (top_k = 0) the
 *   nucleus / plain temperature sampling draws from the 256 most likely tokens, with probabilities still
 *   normalised over the whole vocabulary for the top-p cut (the kept set is then renormalised, as HF does).
 *   The mass beyond the 256 best is dropped; for peaked LM distributions it is negligible, not zero.
 * - Exact ties at the k-th value: HF keeps every tied token (so > k may survive); here the lowest indices fill k.
 * - f32 probabilities: when u · mass lands within ~1e-6 relative of a CDF step, the neighbour may be picked.
 */
import source from '../../shaders/sampling.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { dummy, grid, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';

/** Candidate cap of `sample` (one per invocation of its 256-wide workgroup). */
export const SAMPLE_MAX_K = 256;
/** Rows per `sample` dispatch (the per-row u values ride in the uniform block). */
export const SAMPLE_MAX_ROWS = 16;
/** Written instead of a token id when every logit of the row is NaN. */
export const SAMPLE_NONE = 0xffffffff;

/**
 * A token id read back from `argmax` / `sample`, checked: `SAMPLE_NONE` (every logit NaN) or any id ≥ V means the
 * forward pass broke, which must be reported as such, not decoded as a token (or fed back as the next input).
 */
export function checkSelectedToken(id: number, V: number): number {
  if (Number.isInteger(id) && id >= 0 && id < V) return id;
  if (id === SAMPLE_NONE) {
    // The same code as the CPU sampler's for the same condition (engine/sampler.ts).
    throw new WebVLMError('NumericalError', 'The model produced a non-finite logit (NaN or +∞; or every logit NaN): the forward pass broke.', { details: { vocabSize: V } });
  }
  throw new WebVLMError('Internal', `Token selection returned id ${id}, outside the vocabulary (${V}).`, { details: { id, vocabSize: V } });
}

/** u32 words per row of a `seen` bitmask for a vocabulary of V. */
export const seenMaskWords = (V: number) => Math.ceil(V / 32);

/** A `seen` bitmask [rows, ⌈V/32⌉] with the given token ids marked (ids ≥ V are ignored). */
export function buildSeenMask(ids: ArrayLike<number> | ArrayLike<number>[], V: number, rows = 1): Uint32Array {
  const words = seenMaskWords(V);
  const mask = new Uint32Array(rows * words);
  const lists = rows === 1 && !Array.isArray((ids as ArrayLike<number>[])[0]) ? [ids as ArrayLike<number>] : (ids as ArrayLike<number>[]);
  lists.forEach((list, r) => {
    for (let i = 0; i < list.length; i++) {
      const v = list[i];
      if (v >= 0 && v < V) mask[r * words + (v >>> 5)] |= 1 << (v & 31);
    }
  });
  return mask;
}

interface SelectCommon {
  /** f32 [rows, V]. */
  logits: Binding;
  /** u32 [rows]: the chosen token ids. */
  out: Binding;
  V: number;
  rows?: number;
  /** HF repetition_penalty (> 0; 1 = off). Needs `seen`. */
  penalty?: number;
  /** u32 bitmask [rows, ⌈V/32⌉] of tokens to penalise. */
  seen?: Binding;
  /** Set the chosen token's bit in `seen` (needs `seen`). */
  markSeen?: boolean;
}

export interface ArgmaxArgs extends SelectCommon {
  /** A NaN or +∞ logit anywhere in the row gives SAMPLE_NONE (decoding: a broken forward pass is an error, not a token). */
  strict?: boolean;
}

export interface SampleArgs extends SelectCommon {
  /** > 0. */
  temperature: number;
  /** 0 = off; values above SAMPLE_MAX_K act as SAMPLE_MAX_K. */
  topK: number;
  /** (0, 1]; 1 = off. */
  topP: number;
  /** Uniform random number(s) in [0, 1), one per row. */
  u: number | number[];
}

const F_PENALTY = 1, F_MARK = 2, F_TOPK = 4, F_TOPP = 8, F_STRICT = 16;

function common(kernel: string, gpu: GpuContext, a: SelectCommon): { rows: number; flags: number; penalty: number; seen: Binding } {
  const rows = a.rows ?? 1;
  requireDims(kernel, { V: a.V, rows });
  if (a.V >= SAMPLE_NONE) throw new WebVLMError('ShapeMismatch', `${kernel}: V=${a.V} does not fit below the NONE id.`);
  requireBytes(kernel, 'logits', a.logits, rows * a.V * 4);
  requireBytes(kernel, 'out', a.out, rows * 4);
  const penalty = a.penalty ?? 1;
  if (!(Number.isFinite(penalty) && penalty > 0)) throw new WebVLMError('InvalidArgument', `${kernel}: repetition penalty must be a positive finite number, got ${penalty}.`);
  let flags = 0;
  if (penalty !== 1) flags |= F_PENALTY;
  if (a.markSeen) flags |= F_MARK;
  if (flags && !a.seen) throw new WebVLMError('InvalidArgument', `${kernel}: a repetition penalty or markSeen needs the seen bitmask.`);
  if (a.seen) {
    requireBytes(kernel, 'seen', a.seen, rows * seenMaskWords(a.V) * 4);
    requireDistinct(kernel, a.seen, { logits: a.logits });
  }
  requireDistinct(kernel, a.out, { logits: a.logits, seen: a.seen });
  return { rows, flags, penalty, seen: a.seen ?? dummy(gpu) };
}

function params(rec: Recorder, rows: number, V: number, flags: number, penalty: number, temperature: number, k: number, topP: number, u: number[]) {
  const buf = new ArrayBuffer(32 + 64);
  const w = new Uint32Array(buf), f = new Float32Array(buf);
  w.set([rows, V, seenMaskWords(V), flags]);
  f[4] = penalty;
  f[5] = temperature;
  w[6] = k;
  f[7] = topP;
  f.set(u, 8);
  return rec.uniform(buf);
}

/** Greedy choice per row: out[r] = argmax_v processed logit (ties → lowest index). */
export function argmax(gpu: GpuContext, rec: Recorder, args: ArgmaxArgs): void {
  const { rows, flags: f, penalty, seen } = common('argmax', gpu, args);
  const flags = f | (args.strict ? F_STRICT : 0);
  const pipeline = gpu.pipelines.get({ name: 'sampling', source, entryPoint: 'argmax' });
  rec.dispatch(pipeline, [args.logits, seen, args.out, params(rec, rows, args.V, flags, penalty, 1, 0, 1, [])], grid(gpu, rows), `argmax ${rows}x${args.V}`);
}

/** Sampled choice per row (see the module comment for the rule and its approximations). */
export function sample(gpu: GpuContext, rec: Recorder, args: SampleArgs): void {
  const c = common('sample', gpu, args);
  let { flags } = c;
  const { rows } = c;
  if (rows > SAMPLE_MAX_ROWS) throw new WebVLMError('ShapeMismatch', `sample: at most ${SAMPLE_MAX_ROWS} rows per call, got ${rows}.`);
  const { temperature, topK, topP } = args;
  if (!(Number.isFinite(temperature) && temperature > 0)) {
    throw new WebVLMError('InvalidArgument', `sample: temperature must be a positive finite number (use argmax for greedy), got ${temperature}.`);
  }
  if (!(Number.isInteger(topK) && topK >= 0)) throw new WebVLMError('InvalidArgument', `sample: topK must be a non-negative integer, got ${topK}.`);
  if (!(topP > 0 && topP <= 1)) throw new WebVLMError('InvalidArgument', `sample: topP must be in (0, 1], got ${topP}.`);
  const u = typeof args.u === 'number' ? [args.u] : args.u;
  if (u.length !== rows || u.some((x) => !(x >= 0 && x < 1))) {
    throw new WebVLMError('InvalidArgument', `sample: u must hold ${rows} number(s) in [0, 1), got ${JSON.stringify(args.u)}.`);
  }
  if (topK > 0) flags |= F_TOPK;
  if (topP < 1) flags |= F_TOPP;
  const k = topK > 0 ? Math.min(topK, SAMPLE_MAX_K) : SAMPLE_MAX_K;
  const pipeline = gpu.pipelines.get({ name: 'sampling', source, entryPoint: 'sample' });
  rec.dispatch(
    pipeline,
    [args.logits, c.seen, args.out, params(rec, rows, args.V, flags, c.penalty, temperature, k, topP, u)],
    grid(gpu, rows),
    `sample ${rows}x${args.V} T${temperature} k${topK} p${topP}`,
  );
}
