/** Small HTTP helpers for the hub client: abortable sleep, linked abort controllers, header parsing. */
import { WebVLMError } from '../errors.ts';

export const abortError = (what: string, reason?: unknown) => new WebVLMError('Aborted', `${what} was aborted.`, { cause: reason });

/** Resolves after `ms`, or rejects with `Aborted` as soon as `signal` fires. */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(what, signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(what, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** An AbortController that also fires when `parent` does (AbortSignal.any is too new for Safari < 17.4). */
export function childController(parent: AbortSignal | undefined): { ctrl: AbortController; release: () => void } {
  const ctrl = new AbortController();
  if (!parent) return { ctrl, release: () => {} };
  if (parent.aborted) {
    ctrl.abort(parent.reason);
    return { ctrl, release: () => {} };
  }
  const onAbort = () => ctrl.abort(parent.reason);
  parent.addEventListener('abort', onAbort, { once: true });
  return { ctrl, release: () => parent.removeEventListener('abort', onAbort) };
}

/** A failure worth another attempt (network error, 408, 429, 5xx, stall). */
export class Retryable extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

export function retryAfter(res: Response): number | undefined {
  const v = res.headers.get('retry-after');
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export const isRetryStatus = (s: number) => s === 408 || s === 429 || s >= 500;

export function parseSize(v: string | null): number | null {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : null;
}

/** A sha256 from an ETag-like header value: strong, quoted or not, exactly 64 hex digits. */
export function shaFromEtag(v: string | null): string | null {
  if (!v || v.startsWith('W/')) return null;
  const s = v.replace(/^"|"$/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(s) ? s : null;
}

/** Compressed transfer: Content-Length counts encoded bytes, so it says nothing about the file's size. */
export const encoded = (res: Response) => {
  const enc = res.headers.get('content-encoding');
  return enc !== null && enc.toLowerCase() !== 'identity';
};
