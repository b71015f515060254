/**
 * Checks of what callers pass (load options, generation options), done before anything is queued or loaded, so that
 * every wrong type or out-of-range value is an `InvalidArgument` naming the option — never a silent coercion
 * (`seed: 1.5` acting as 1, `contextLength: NaN` as the default) and never an untyped `TypeError` later.
 */
import { WebVLMError } from '../errors.ts';
import type { WeightFormat } from '../types.ts';

const show = (v: unknown): string => {
  if (typeof v === 'symbol') return 'a symbol';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
};

export function invalid(option: string, value: unknown, expected: string): never {
  throw new WebVLMError('InvalidArgument', `Invalid option ${option}: ${show(value)} (expected ${expected}).`, {
    hint: `Pass ${option} as ${expected}, or leave it out for the default.`,
    details: { option },
  });
}

export const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** KV-cache tokens when the caller gives no contextLength (capped by the model's max_position_embeddings). */
export const DEFAULT_CONTEXT = 4096;

/** Weight storage formats a load accepts. */
export const WEIGHT_FORMATS = ['int4', 'f32'] as const satisfies readonly WeightFormat[];
export const IMAGE_DETAILS = ['low', 'auto', 'high'] as const;

export interface LoadOptionValues {
  baseUrl?: unknown;
  revision?: unknown;
  weights?: unknown;
  contextLength?: unknown;
  memoryBudget?: unknown;
  cache?: unknown;
  inline?: unknown;
  warmup?: unknown;
  headers?: unknown;
  onProgress?: unknown;
  signal?: unknown;
  layout?: unknown;
}

export function validateLoadOptions(o: LoadOptionValues): void {
  if (o === null || typeof o !== 'object') invalid('options', o, 'an object');
  if (o.baseUrl !== undefined && (typeof o.baseUrl !== 'string' || !o.baseUrl)) invalid('baseUrl', o.baseUrl, 'a non-empty URL string');
  if (o.revision !== undefined && (typeof o.revision !== 'string' || !o.revision)) invalid('revision', o.revision, 'a non-empty branch, tag or commit');
  if (o.weights !== undefined && !(WEIGHT_FORMATS as readonly unknown[]).includes(o.weights)) {
    const w = o.weights as Record<string, unknown>;
    const formats = `${WEIGHT_FORMATS.map((f) => `'${f}'`).join(' or ')}`;
    if (w === null || typeof w !== 'object' || Array.isArray(w)) invalid('weights', o.weights, `${formats}, or per part { vision?, text? }`);
    for (const [k, v] of Object.entries(w)) {
      if (k !== 'vision' && k !== 'text') invalid(`weights.${k}`, v, "a part: 'vision' or 'text'");
      if (!(WEIGHT_FORMATS as readonly unknown[]).includes(v)) invalid(`weights.${k}`, v, formats);
    }
  }
  if (o.contextLength !== undefined && !isPositiveInt(o.contextLength)) invalid('contextLength', o.contextLength, 'a positive integer (tokens)');
  if (o.memoryBudget !== undefined && !(typeof o.memoryBudget === 'number' && o.memoryBudget > 0 && Number.isFinite(o.memoryBudget))) {
    invalid('memoryBudget', o.memoryBudget, 'a positive number of bytes');
  }
  if (o.cache !== undefined && typeof o.cache !== 'boolean') invalid('cache', o.cache, 'true or false');
  if (o.inline !== undefined && typeof o.inline !== 'boolean') invalid('inline', o.inline, 'true or false');
  if (o.warmup !== undefined && typeof o.warmup !== 'boolean') invalid('warmup', o.warmup, 'true or false');
  if (o.headers !== undefined) {
    if (o.headers === null || typeof o.headers !== 'object' || Array.isArray(o.headers)) invalid('headers', o.headers, 'an object of header names to strings');
    for (const [k, v] of Object.entries(o.headers as object)) if (typeof v !== 'string') invalid(`headers[${JSON.stringify(k)}]`, v, 'a string');
  }
  if (o.layout !== undefined && o.layout !== 'hub' && o.layout !== 'folder') invalid('layout', o.layout, "'hub' or 'folder'");
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') invalid('onProgress', o.onProgress, 'a function (progress) => void');
  if (o.signal !== undefined && !(typeof AbortSignal !== 'undefined' && o.signal instanceof AbortSignal)) invalid('signal', o.signal, 'an AbortSignal');
}

export interface GenerationValues {
  maxTokens?: unknown;
  seed?: unknown;
  stop?: unknown;
  detail?: unknown;
  maxImageTokens?: unknown;
  compression?: unknown;
}

/** Generation and vision options of a chat request (sampling parameters: `validateSampling`). */
export function validateGeneration(o: GenerationValues): void {
  if (o.maxTokens !== undefined && !isPositiveInt(o.maxTokens)) invalid('maxTokens', o.maxTokens, 'a positive integer');
  if (o.seed !== undefined && !(typeof o.seed === 'number' && Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32)) {
    invalid('seed', o.seed, 'an integer from 0 to 2³²−1');
  }
  if (o.stop !== undefined) {
    if (!Array.isArray(o.stop)) invalid('stop', o.stop, "an array of strings, e.g. stop: ['\\n\\n']");
    for (const s of o.stop as unknown[]) if (typeof s !== 'string') invalid('stop[]', s, 'a string');
  }
  if (o.detail !== undefined && !(IMAGE_DETAILS as readonly unknown[]).includes(o.detail)) invalid('detail', o.detail, "'low', 'auto' or 'high'");
  if (o.maxImageTokens !== undefined && !isPositiveInt(o.maxImageTokens)) invalid('maxImageTokens', o.maxImageTokens, 'a positive integer');
  const c = o.compression;
  if (c !== undefined && c !== false && !isPositiveInt(c) && !(c !== null && typeof c === 'object' && isPositiveInt((c as { factor?: unknown }).factor))) {
    invalid('compression', c, 'false, a positive integer factor, or { factor }');
  }
}
