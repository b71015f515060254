/**
 * `createEngine()`: the main-thread API. The model runs in a Web Worker (module worker, bundled by Vite);
 * this side only converts images to transferable forms, forwards abort signals, turns the worker's
 * callbacks into an async iterator, and notices when the worker is gone (every pending call then rejects
 * with `WorkerTerminated` instead of hanging).
 */
import * as Comlink from 'comlink';
import { WebVLMError } from '../errors.ts';
import { validateLoadOptions } from '../engine/validate.ts';
import { isRelativeFolderId } from '../engine/hub-url.ts';
import { installErrorTransfer, type WorkerChatRequest } from '../worker/protocol.ts';
import type { ChatDelta, ChatRequest, EngineInfo, EngineOptions, ImagePlanReport, VisionOptions } from '../types.ts';
import { inlineConnection, workerConnection, type Connection } from './connection.ts';
import { prepareMessages, validateChatRequest } from './request.ts';
import { DeltaBuffer } from '../engine/delta-buffer.ts';
import { Turns } from '../engine/turns.ts';

/**
 * A loaded model in its worker.
 *
 * Requests queue: the engine runs one `chat` (or `reset`) at a time, in call order — the place in the queue is taken
 * when `chat()` is called, whatever its images cost to prepare; a second `chat` started while one streams waits for it
 * (its deltas never interleave with the first's). A request starts when `chat()` is called, not when its stream is
 * first read: a stream nobody reads still completes (its deltas are kept for it) and frees the queue; leaving a
 * `for await` early (`break`, `return()`) aborts it. The API is stateless per request — pass the whole conversation
 * each time; the engine only keeps a KV cache of the last one, reused for the prefix the next request shares with it.
 */
export interface WebVLMEngine {
  readonly info: EngineInfo;
  /**
   * Streams the answer; the last delta is `{ type: 'done', usage, finishReason }`. Requests queue (see above).
   *
   * Abort with `req.signal`: before the first token the iterator throws `WebVLMError('Aborted')`; once tokens flow,
   * generation stops within one forward pass and the stream ends with `finishReason: 'abort'` (and the text so far).
   * Either way the engine stays usable. Errors are `WebVLMError`s with a stable `code` (`ContextOverflow`,
   * `InvalidImage`, `ImageDecodeFailed`, `DeviceLost` — the next call then re-creates the GPU device and reloads the
   * model from the cache —, `WorkerTerminated`, …).
   */
  chat(req: ChatRequest): AsyncIterable<ChatDelta>;
  /** The tile plan an image of this size gets under `opts` (for overlays and token budgets). */
  plan(width: number, height: number, opts?: VisionOptions): Promise<ImagePlanReport>;
  /**
   * Forgets the conversation cached on the GPU (the next chat re-reads the whole history). Queued like a request:
   * it never changes an answer being written.
   */
  reset(): Promise<void>;
  /**
   * Aborts the running request, frees the GPU memory and ends the worker. Requests not finished by then reject with
   * `Disposed` (a stream already writing may instead end with `finishReason: 'abort'`); later calls reject with `Disposed`.
   */
  dispose(): Promise<void>;
}

/** Test-only hooks, reached as `engine[TEST_HOOKS]` (not part of the public API; not exported from the package). */
export const TEST_HOOKS = Symbol.for('webvlm.testHooks');
export interface TestHooks {
  /** Destroys the worker's GPU device (simulates a driver reset / device loss). */
  loseDevice(): Promise<void>;
  /** Ends the worker from inside (simulates a crash). */
  crashWorker(): Promise<void>;
  /** The next chat is aborted (through the worker's abort path) as it enters image encoding or the prefill. */
  abortAtPhase(phase: 'encode' | 'prefill'): Promise<void>;
  /** The worker (null for an inline engine). */
  readonly worker: Worker | null;
}

let nextId = 1;

/** Rejects with `Aborted` when `signal` fires before `p` settles. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(new WebVLMError('Aborted', `The request was aborted ${what}.`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new WebVLMError('Aborted', `The request was aborted ${what}.`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Loads `model` — a Hugging Face repo id (files at `{baseUrl}/{model}/resolve/{revision}/…`), or a folder's URL
 * ('/models/tiny/', 'https://cdn.example.com/tiny/': files at `{folder}{file}`) — in a new worker (or in
 * this thread with `inline: true`). Downloaded files are cached in browser storage (see `EngineOptions.cache`,
 * `modelCache`); the GPU memory the model needs is checked before any weight is downloaded
 * (`EngineOptions.memoryBudget`). Rejects with a `WebVLMError`: `InvalidArgument` (options), `ModelNotFound`,
 * `UnsupportedModel`, `CorruptCheckpoint`, `DownloadFailed`, `QuotaExceeded`, `OutOfMemory`, `WebGPUUnavailable`,
 * `Aborted` (`opts.signal`), `WorkerTerminated`.
 */
export async function createEngine(model: string, opts: EngineOptions = {}): Promise<WebVLMEngine> {
  installErrorTransfer();
  if (typeof model !== 'string' || !model) throw new WebVLMError('InvalidArgument', `createEngine: model must be a repo id like "HuggingFaceTB/SmolVLM-256M-Instruct", got ${JSON.stringify(model)}.`);
  validateLoadOptions(opts);
  // A folder given as a relative URL ('/models/tiny/', './tiny/') is resolved here: inside the worker it would resolve
  // against the worker script's URL instead of the page's.
  if (isRelativeFolderId(model) && typeof document !== 'undefined') model = new URL(model, document.baseURI).href;
  if (opts.inline && opts.worker) throw new WebVLMError('InvalidArgument', 'createEngine: pass either inline: true or a worker, not both.');
  if (opts.signal?.aborted) throw new WebVLMError('Aborted', 'The load was aborted before it started.');
  let disposed = false;
  if (!opts.inline && typeof Worker === 'undefined') {
    throw new WebVLMError('WebGPUUnavailable', 'This environment has no Web Workers; pass inline: true (and gpu: the navigator.gpu to use, e.g. from the webgpu package in Node).');
  }
  const worker = opts.inline ? null : opts.worker ?? new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'webvlm' });
  const conn: Connection = worker ? await workerConnection(worker, () => disposed) : await inlineConnection(opts.gpu as GPU | undefined);
  const { calls } = conn;
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, conn.dead]);

  let info: EngineInfo;
  const onAbort = () => {
    void calls.abortLoad();
    conn.markGone(new WebVLMError('Aborted', `Loading ${model} was aborted.`));
    conn.terminate();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    info = await guard(calls.load(model, {
      baseUrl: opts.baseUrl, revision: opts.revision, headers: opts.headers, weights: opts.weights, contextLength: opts.contextLength,
      cache: opts.cache, memoryBudget: opts.memoryBudget, layout: opts.layout, warmup: opts.warmup,
    }, Comlink.proxy((p) => opts.onProgress?.(p))));
  } catch (e) {
    disposed = true;
    conn.terminate();
    throw conn.gone ?? e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }

  const usable = () => {
    if (disposed) throw new WebVLMError('Disposed', 'This engine was disposed.');
    if (conn.gone) throw conn.gone;
  };
  const turns = new Turns();
  /** Controllers of requests not yet finished (dispose aborts them). */
  const live = new Set<AbortController>();

  /** One request, start to end; its deltas go to `out`. Never throws (failures end `out`). */
  async function runChat(req: ChatRequest, ctrl: AbortController, turn: { turn: Promise<void>; done: () => void }, out: DeltaBuffer): Promise<void> {
    const { signal: _user, messages, ...rest } = req;
    const id = nextId++;
    let sent = false;
    const onAbort = () => {
      if (sent) void calls.abort(id).catch(() => {});
    };
    ctrl.signal.addEventListener('abort', onAbort);
    try {
      usable();
      // Images are prepared while earlier requests run; the turn is awaited after (its place was taken already).
      const prepared = await untilAborted(prepareMessages(messages, ctrl.signal), ctrl.signal, 'while its images were prepared');
      await untilAborted(guard(turn.turn), ctrl.signal, 'while it waited for its turn');
      usable();
      const wreq: WorkerChatRequest = { ...rest, messages: prepared.messages, images: prepared.images };
      const transfer = prepared.images.filter((x): x is ImageBitmap => typeof ImageBitmap !== 'undefined' && x instanceof ImageBitmap);
      sent = true;
      const done = calls.chat(id, Comlink.transfer(wreq, transfer), Comlink.proxy((d: ChatDelta) => out.push(d)));
      if (ctrl.signal.aborted) onAbort(); // fired between the checks above and the send
      await guard(done);
      if (!out.sawDone) throw new WebVLMError('Internal', 'The answer ended without its final delta.');
    } catch (e) {
      out.fail(disposed && !(e instanceof WebVLMError && e.code === 'Aborted') ? new WebVLMError('Disposed', 'The engine was disposed during the request.') : e);
    } finally {
      ctrl.signal.removeEventListener('abort', onAbort);
      live.delete(ctrl);
      turn.done();
      out.end();
    }
  }

  const engine: WebVLMEngine & { [TEST_HOOKS]: TestHooks } = {
    get info() {
      return info;
    },
    chat(req: ChatRequest): AsyncIterable<ChatDelta> {
      // Synchronous: the checks, the queue position and the abort listener, before any await.
      const ctrl = new AbortController();
      const out = new DeltaBuffer(() => ctrl.abort());
      const turn = turns.take();
      const user = (req as ChatRequest | undefined)?.signal;
      const onUser = () => ctrl.abort(user?.reason);
      try {
        usable();
        validateChatRequest(req);
      } catch (e) {
        turn.done();
        out.fail(e);
        return out;
      }
      if (user?.aborted) ctrl.abort(user.reason);
      else user?.addEventListener('abort', onUser, { once: true });
      live.add(ctrl);
      void runChat(req, ctrl, turn, out).finally(() => user?.removeEventListener('abort', onUser));
      return out;
    },
    async plan(width: number, height: number, o: VisionOptions = {}) {
      usable();
      return guard(calls.plan(width, height, o));
    },
    async reset() {
      usable();
      const t = turns.take();
      try {
        await guard(t.turn);
        usable();
        await guard(calls.reset());
      } finally {
        t.done();
      }
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      for (const c of live) c.abort();
      try {
        if (!conn.gone) await Promise.race([calls.dispose(), conn.dead, new Promise((r) => setTimeout(r, 10_000))]).catch(() => {});
      } finally {
        conn.markGone(new WebVLMError('Disposed', 'This engine was disposed.'));
        conn.terminate();
      }
    },
    [TEST_HOOKS]: {
      loseDevice: () => guard(calls.testLoseDevice()),
      crashWorker: () => guard(calls.testCrash()),
      abortAtPhase: (phase) => guard(calls.testAbortAtPhase(phase)),
      worker,
    },
  };
  return engine;
}
