/**
 * Small HTTP helpers for the hub client and image fetches: abortable sleep, linked abort controllers, deadlines
 * (response headers, body idle) on a per-request AbortController, header parsing.
 */
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

/** A deadline passed: no response headers, or no body bytes, for `ms`. Retried like a network error. */
export class TimeoutError extends Retryable {
  constructor(readonly phase: 'headers' | 'body', readonly ms: number) {
    super(phase === 'headers' ? `no response headers within ${ms} ms` : `no data for ${ms} ms`);
  }
}

/** `details` for an error whose last failure was `e`: the deadline that passed, when one did. */
export const timeoutDetails = (e: unknown): Record<string, unknown> => (e instanceof TimeoutError ? { timeoutMs: e.ms, timedOut: e.phase } : {});

/**
 * `p`, unless `ms` pass first (then `conn` is aborted, so the request really stops, and this rejects with a
 * `TimeoutError`) or `parent` fires (rejects with `Aborted` at once, whatever `p` does). `ms` ≤ 0 or Infinity: no
 * deadline. Racing rather than trusting `p` to reject on abort also covers a `fetch` that ignores its signal.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, phase: 'headers' | 'body', conn: AbortController, parent: AbortSignal | undefined, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(abortError(what, parent?.reason));
    };
    if (parent?.aborted) return onAbort();
    parent?.addEventListener('abort', onAbort, { once: true });
    if (ms > 0 && Number.isFinite(ms)) {
      timer = setTimeout(() => {
        done();
        const e = new TimeoutError(phase, ms);
        conn.abort(e);
        reject(e);
      }, ms);
    }
    p.then(
      (v) => { done(); resolve(v); },
      (e) => {
        done();
        reject(parent?.aborted ? abortError(what, parent.reason) : e);
      },
    );
  });
}

export interface DeadlineFetch {
  fetch: typeof fetch;
  /** Response headers deadline. */
  headersMs: number;
  /** The caller's signal: aborts the request with `Aborted`. */
  signal?: AbortSignal;
  /** For messages: "Downloading config.json". */
  what: string;
}

/**
 * One request with a response-headers deadline, on its own AbortController (a child of `signal`): `close()` ends
 * it (the body too) and must be called once the caller is done with the response.
 */
export async function fetchWithDeadline(url: string, init: RequestInit, o: DeadlineFetch): Promise<{ res: Response; conn: AbortController; close: () => void }> {
  const { ctrl, release } = childController(o.signal);
  const close = () => {
    ctrl.abort();
    release();
  };
  const p = o.fetch(url, { ...init, signal: ctrl.signal });
  try {
    const res = await withDeadline(p, o.headersMs, 'headers', ctrl, o.signal, o.what);
    return { res, conn: ctrl, close };
  } catch (e) {
    close();
    p.then((r) => r.body?.cancel().catch(() => {}), () => {}); // a fetch that ignored the abort: drop its body when it comes
    throw e;
  }
}

export interface BodyRead {
  /** The request's controller (aborted on a timeout or when the cap is passed). */
  conn: AbortController;
  /** Longest wait for the next chunk. */
  idleMs: number;
  signal?: AbortSignal;
  what: string;
  /** More than this many bytes: `onTooBig()` is thrown once the cap is passed (the rest is never read). */
  maxBytes?: number;
  onTooBig?: (received: number) => Error;
}

/** A whole response body, each chunk under an idle deadline (what `arrayBuffer()` lacks). */
export async function readBody(res: Response, o: BodyRead): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const r = await withDeadline(reader.read(), o.idleMs, 'body', o.conn, o.signal, o.what);
      if (r.done) break;
      parts.push(r.value);
      n += r.value.length;
      if (o.maxBytes !== undefined && n > o.maxBytes) throw o.onTooBig ? o.onTooBig(n) : new Error(`more than ${o.maxBytes} bytes`);
    }
  } catch (e) {
    o.conn.abort();
    reader.cancel().catch(() => {});
    throw e;
  }
  return concat(parts, n);
}

export function concat(parts: Uint8Array[], n = parts.reduce((a, p) => a + p.length, 0)): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
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
