/**
 * RoPE variants of a decoder config (transformers `modeling_rope_utils.py`, `ROPE_INIT_FUNCTIONS`): the parse of
 * `rope_theta` + `rope_scaling` (transformers ≤ 4.5x) or `rope_parameters` (v5), and the inverse frequencies each
 * variant gives, rounded as HF computes them in float32. Family-neutral: any family's decoder config uses it.
 *
 * - 'default': inv_freq[i] = 1 / θ^(2i/hd).
 * - 'linear' (`_compute_linear_scaling_rope_parameters`): the default inv_freq ÷ factor (positions ÷ factor).
 * - 'dynamic' (`_compute_dynamic_ntk_parameters` + `dynamic_rope_update`): once the sequence is longer than
 *   max_position_embeddings (L = the largest position + 1 of the forward call), the base becomes
 *   θ·(factor·L/max − (factor − 1))^(hd/(hd − 2)); at or below it, the default frequencies. HF keeps the largest
 *   L seen so far in the module (and resets below max); for a sequence that only grows (a chat, with or without
 *   a reused cache) that is the current L, which is what `ropeFrequencies` takes. Keys already in the cache keep
 *   the rotation they were given, as in HF.
 * Every other type (yarn, longrope, llama3, ...) is refused: `UnsupportedModel` naming the type.
 */
import { WebVLMError } from '../errors.ts';
import { ropeInvFreq } from '../kernels/rope.ts';

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; maxPositions: number };

export interface RopeSpec {
  theta: number;
  scaling: RopeScaling;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(message: string): never {
  throw new WebVLMError('UnsupportedModel', `config.json: ${message}`);
}

function positive(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${what} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** Keys a scaling object may hold besides those its type reads (HF writes both `type` and `rope_type`). */
const COMMON = new Set(['rope_type', 'type', 'rope_theta']);

function scalingOf(obj: Json, where: string, maxPositions: number): RopeScaling {
  const type = obj.rope_type ?? obj.type ?? 'default';
  const known = (keys: string[]) => {
    for (const k of Object.keys(obj)) if (!COMMON.has(k) && !keys.includes(k)) fail(`${where}.${k} is not understood for rope type ${JSON.stringify(type)}`);
  };
  if (obj.partial_rotary_factor !== undefined && obj.partial_rotary_factor !== 1) fail(`${where}.partial_rotary_factor ${JSON.stringify(obj.partial_rotary_factor)} is not supported`);
  if (type === 'default') {
    known(['partial_rotary_factor']);
    return { type: 'default' };
  }
  if (type === 'linear' || type === 'dynamic') {
    known(['factor', 'partial_rotary_factor']);
    const factor = positive(obj.factor, `${where}.factor`);
    // HF warns on factor < 1 and computes anyway; a factor below 1 is no checkpoint's intent.
    if (factor < 1) fail(`${where}.factor ${factor} must be ≥ 1`);
    return type === 'linear' ? { type, factor } : { type, factor, maxPositions };
  }
  fail(`${where} rope type ${JSON.stringify(type)} is not supported (webvlm runs 'default', 'linear' and 'dynamic' RoPE)`);
}

/**
 * RoPE of a decoder config object `tc` (its path in messages: `where`): θ from `rope_parameters.rope_theta` or
 * `rope_theta` (default 10000), the scaling from `rope_parameters` or `rope_scaling` (null/absent: default).
 */
export function parseRope(tc: Json, where: string, maxPositions: number): RopeSpec {
  const params = tc.rope_parameters;
  let theta: unknown = tc.rope_theta ?? 10000;
  let scaling: RopeScaling = { type: 'default' };
  if (params !== undefined && params !== null) {
    if (!isObject(params)) fail(`${where}.rope_parameters must be an object`);
    scaling = scalingOf(params, `${where}.rope_parameters`, maxPositions);
    if (params.rope_theta !== undefined) theta = params.rope_theta;
  }
  const legacy = tc.rope_scaling;
  if (legacy !== undefined && legacy !== null) {
    if (!isObject(legacy)) fail(`${where}.rope_scaling must be an object or null`);
    const s = scalingOf(legacy, `${where}.rope_scaling`, maxPositions);
    if (scaling.type !== 'default' && JSON.stringify(s) !== JSON.stringify(scaling)) fail(`${where}.rope_scaling and rope_parameters disagree`);
    if (scaling.type === 'default') scaling = s;
  }
  return { theta: positive(theta, `${where}.rope_theta`), scaling };
}

/**
 * inv_freq [hd/2] for a forward whose largest position is `seqLen − 1`, as HF computes it in float32
 * (the dynamic base itself in float64, as Python does).
 */
export function ropeFrequencies(headDim: number, rope: RopeSpec, seqLen: number): Float32Array {
  const s = rope.scaling;
  if (s.type === 'linear') {
    const inv = ropeInvFreq(headDim, rope.theta);
    const f = Math.fround(s.factor);
    for (let i = 0; i < inv.length; i++) inv[i] = Math.fround(inv[i] / f);
    return inv;
  }
  if (s.type === 'dynamic' && seqLen > s.maxPositions) {
    const base = rope.theta * ((s.factor * seqLen) / s.maxPositions - (s.factor - 1)) ** (headDim / (headDim - 2));
    return ropeInvFreq(headDim, base);
  }
  return ropeInvFreq(headDim, rope.theta);
}
