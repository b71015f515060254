/**
 * How the page reaches the host that owns the model: a Web Worker through comlink (default), or the host called
 * directly in this thread (`inline: true`). Either way every call returns a promise, errors arrive as `WebVLMError`s,
 * and `dead` rejects once the host is gone (so no call hangs on a dead worker).
 */
import * as Comlink from 'comlink';
import { WebVLMError, fromErrorPayload, toErrorPayload } from '../errors.ts';
import type { WorkerApi } from '../worker/protocol.ts';

export type HostCalls = { [K in keyof WorkerApi]: (...args: Parameters<WorkerApi[K]>) => Promise<Awaited<ReturnType<WorkerApi[K]>>> };

export interface Connection {
  calls: HostCalls;
  /** Rejects with the reason once the host is gone (terminated, crashed, disposed). */
  dead: Promise<never>;
  /** Marks the host gone (the first reason wins). */
  markGone(e: WebVLMError): void;
  readonly gone: WebVLMError | null;
  /** Ends the host (terminates the worker). */
  terminate(): void;
  /** The worker, when there is one (test hooks). */
  worker: Worker | null;
}

function deadline(): { dead: Promise<never>; markGone: (e: WebVLMError) => void; gone: () => WebVLMError | null } {
  let gone: WebVLMError | null = null;
  let reject!: (e: WebVLMError) => void;
  const dead = new Promise<never>((_, r) => (reject = r));
  dead.catch(() => {});
  return {
    dead,
    markGone: (e) => {
      if (gone) return;
      gone = e;
      reject(e);
    },
    gone: () => gone,
  };
}

/** The model in a module worker (ours, or the caller's running `webvlm/worker`). */
export async function workerConnection(worker: Worker, isDisposed: () => boolean): Promise<Connection> {
  const remote = Comlink.wrap<WorkerApi>(worker);
  const d = deadline();
  const stopped = (why: string) =>
    d.markGone(isDisposed()
      ? new WebVLMError('Disposed', 'This engine was disposed.')
      : new WebVLMError('WorkerTerminated', `The webvlm worker stopped (${why}); pending requests were cancelled.`));
  worker.addEventListener('error', (ev) => {
    ev.preventDefault?.();
    stopped(`uncaught error: ${(ev as ErrorEvent).message || 'the worker script failed'}`);
  });
  const calls = remote as unknown as HostCalls;
  let ended = false;
  // A Web Lock the worker holds for its lifetime: granted to us when it ends (terminate, close, crash).
  if (typeof navigator !== 'undefined' && navigator.locks) {
    const lock = `webvlm-worker-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    if (await Promise.race([calls.hold(lock), d.dead])) void navigator.locks.request(lock, () => stopped('terminated or crashed'));
  }
  return {
    calls, dead: d.dead, markGone: d.markGone, worker,
    get gone() {
      return d.gone();
    },
    terminate: () => {
      if (ended) return;
      ended = true;
      remote[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}

/**
 * The host in this thread. Calls are made async, and what they throw goes through the same conversion as across the
 * worker boundary (untyped errors → `Internal`, DOM aborts → `Aborted`).
 */
export async function inlineConnection(gpu: GPU | undefined): Promise<Connection> {
  const { createHost } = await import('../worker/host.ts');
  const d = deadline();
  const host = createHost({ gpu, close: () => d.markGone(new WebVLMError('WorkerTerminated', 'The inline host was closed.')) });
  const calls = {} as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const [name, fn] of Object.entries(host) as Array<[string, (...a: unknown[]) => unknown]>) {
    calls[name] = async (...args) => {
      try {
        return await fn(...args);
      } catch (e) {
        throw e instanceof WebVLMError ? e : fromErrorPayload(toErrorPayload(e));
      }
    };
  }
  return {
    calls: calls as unknown as HostCalls, dead: d.dead, markGone: d.markGone, worker: null,
    get gone() {
      return d.gone();
    },
    terminate: () => {},
  };
}
