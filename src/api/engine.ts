/**
 * `createEngine()`: the main-thread API. The model runs in a Web Worker (module worker, bundled by Vite);
 * this side only converts images to transferable forms, forwards abort signals, turns the worker's
 * callbacks into an async iterator, and notices when the worker is gone (every pending call then rejects
 * with `WorkerTerminated` instead of hanging).
 */
import * as Comlink from 'comlink';
import { WebVLMError } from '../errors.ts';
import { installErrorTransfer, type WorkerApi, type WorkerChatRequest } from '../worker/protocol.ts';
import { checkImageSize, type WorkerImage } from '../worker/image-decode.ts';
import type { ChatDelta, ChatMessage, ChatRequest, ContentPart, EngineInfo, EngineOptions, ImageInput, ImagePlanReport, VisionOptions } from './types.ts';

/**
 * A loaded model in its worker.
 *
 * Requests queue: the engine runs one `chat` at a time, in call order; a second `chat` started while one streams
 * waits for it (its deltas never interleave with the first's). The API is stateless per request — pass the whole
 * conversation each time; the engine only keeps a KV cache of the last one, reused for the prefix the next request
 * shares with it.
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
  /** Forgets the conversation cached on the GPU (the next chat re-reads the whole history). */
  reset(): Promise<void>;
  /** Frees the GPU memory and ends the worker; later calls reject with `Disposed`. */
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
  readonly worker: Worker;
}

let nextId = 1;

/** Width and height of what can be measured on this thread, to refuse empty or huge images before copying them. */
function dimensions(img: ImageInput): { width: number; height: number } | null {
  if (typeof HTMLImageElement !== 'undefined' && img instanceof HTMLImageElement) return { width: img.naturalWidth, height: img.naturalHeight };
  if (typeof HTMLVideoElement !== 'undefined' && img instanceof HTMLVideoElement) return { width: img.videoWidth, height: img.videoHeight };
  const o = img as { width?: unknown; height?: unknown };
  return typeof o.width === 'number' && typeof o.height === 'number' ? { width: o.width, height: o.height } : null;
}

async function toWorkerImage(img: ImageInput): Promise<WorkerImage> {
  if (typeof img === 'string') return new URL(img, globalThis.location?.href).href;
  if (img instanceof URL) return img.href;
  if (typeof Blob !== 'undefined' && img instanceof Blob) return img;
  if (typeof HTMLImageElement !== 'undefined' && img instanceof HTMLImageElement) {
    try {
      await img.decode();
    } catch (cause) {
      throw new WebVLMError('ImageDecodeFailed', `The <img> (${img.currentSrc || img.src}) could not be decoded.`, { cause });
    }
  }
  const dims = dimensions(img);
  if (dims) checkImageSize(dims.width, dims.height);
  if (typeof ImageData !== 'undefined' && img instanceof ImageData) return img;
  if (typeof ImageBitmap !== 'undefined' && img instanceof ImageBitmap) return img;
  try {
    return await createImageBitmap(img as ImageBitmapSource);
  } catch (cause) {
    throw new WebVLMError('ImageDecodeFailed', 'The image could not be read (unsupported type or tainted by CORS).', { cause });
  }
}

/** Splits messages into worker messages (image parts → placeholders) and the images, in order. */
async function prepare(messages: ChatMessage[]): Promise<{ messages: ChatMessage[]; images: WorkerImage[] }> {
  if (!Array.isArray(messages) || messages.length === 0) throw new WebVLMError('InvalidArgument', 'messages must be a non-empty array.');
  const images: WorkerImage[] = [];
  const out: ChatMessage[] = [];
  for (const m of messages) {
    if (typeof m?.content === 'string') {
      out.push({ role: m.role, content: m.content });
      continue;
    }
    if (!Array.isArray(m?.content)) throw new WebVLMError('InvalidArgument', 'Each message needs content: a string or an array of parts.');
    const parts: ContentPart[] = [];
    for (const p of m.content) {
      if (p.type === 'text') parts.push(p);
      else if (p.type === 'image') {
        images.push(await toWorkerImage(p.image));
        parts.push({ type: 'image', image: '', detail: p.detail } as ContentPart);
      } else if (p.type === 'image_url') {
        images.push(await toWorkerImage(p.image_url.url));
        parts.push({ type: 'image', image: '', detail: p.image_url.detail } as ContentPart);
      } else throw new WebVLMError('InvalidArgument', `Unknown content part type ${(p as { type?: string }).type}.`);
    }
    out.push({ role: m.role, content: parts });
  }
  return { messages: out, images };
}

/**
 * Loads `model` (a Hugging Face repo id, files at `{baseUrl}/{model}/resolve/{revision}/…`) in a new worker.
 * Downloaded files are cached in browser storage (see `EngineOptions.cache`, `modelCache`); the GPU memory the model
 * needs is checked before any weight is downloaded (`EngineOptions.memoryBudget`). Rejects with a `WebVLMError`:
 * `ModelNotFound`, `UnsupportedModel`, `CorruptCheckpoint`, `DownloadFailed`, `QuotaExceeded`, `OutOfMemory`,
 * `WebGPUUnavailable`, `Aborted` (`opts.signal`), `WorkerTerminated`.
 */
export async function createEngine(model: string, opts: EngineOptions = {}): Promise<WebVLMEngine> {
  installErrorTransfer();
  if (opts.signal?.aborted) throw new WebVLMError('Aborted', 'The load was aborted before it started.');
  const worker = opts.worker ?? new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'webvlm' });
  const remote = Comlink.wrap<WorkerApi>(worker);
  let disposed = false;
  let gone: WebVLMError | null = null;
  let markGone!: (e: WebVLMError) => void;
  /** Rejects once the worker is gone: every call races it, so none hangs on a dead worker. */
  const dead = new Promise<never>((_, reject) => {
    markGone = (e) => {
      if (gone) return;
      gone = e;
      reject(e);
    };
  });
  dead.catch(() => {});
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, dead]);
  const stopped = (why: string) =>
    markGone(disposed
      ? new WebVLMError('Disposed', 'This engine was disposed.')
      : new WebVLMError('WorkerTerminated', `The webvlm worker stopped (${why}); pending requests were cancelled.`));
  worker.addEventListener('error', (ev) => {
    ev.preventDefault?.();
    stopped(`uncaught error: ${(ev as ErrorEvent).message || 'the worker script failed'}`);
  });

  let info: EngineInfo;
  const onAbort = () => {
    void remote.abortLoad();
    markGone(new WebVLMError('Aborted', `Loading ${model} was aborted.`));
    worker.terminate();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // A Web Lock the worker holds for its lifetime: granted to us when it ends (terminate, close, crash).
    if (typeof navigator !== 'undefined' && navigator.locks) {
      const lock = `webvlm-worker-${Math.random().toString(36).slice(2)}-${Date.now()}`;
      if (await guard(remote.hold(lock))) void navigator.locks.request(lock, () => stopped('terminated or crashed'));
    }
    info = await guard(remote.load(model, {
      baseUrl: opts.baseUrl, revision: opts.revision, headers: opts.headers, weights: opts.weights, contextLength: opts.contextLength,
      cache: opts.cache, memoryBudget: opts.memoryBudget,
    }, Comlink.proxy((p) => opts.onProgress?.(p))));
  } catch (e) {
    disposed = true;
    worker.terminate();
    throw gone ?? e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }

  const usable = () => {
    if (disposed) throw new WebVLMError('Disposed', 'This engine was disposed.');
    if (gone) throw gone;
  };

  const engine: WebVLMEngine & { [TEST_HOOKS]: TestHooks } = {
    get info() {
      return info;
    },
    chat(req: ChatRequest): AsyncIterable<ChatDelta> {
      usable();
      const { signal, messages, ...rest } = req;
      return {
        async *[Symbol.asyncIterator]() {
          usable();
          if (signal?.aborted) throw new WebVLMError('Aborted', 'The request was aborted before it started.');
          const prepared = await prepare(messages);
          const id = nextId++;
          const queue: ChatDelta[] = [];
          let wake: (() => void) | null = null;
          let finished = false;
          let failure: unknown = null;
          const onAbort = () => void remote.abort(id);
          signal?.addEventListener('abort', onAbort, { once: true });
          const wreq: WorkerChatRequest = { ...rest, messages: prepared.messages, images: prepared.images };
          const transfer = prepared.images.filter((x): x is ImageBitmap => typeof ImageBitmap !== 'undefined' && x instanceof ImageBitmap);
          guard(remote.chat(id, Comlink.transfer(wreq, transfer), Comlink.proxy((d: ChatDelta) => {
            queue.push(d);
            wake?.();
          })))
            .catch((e) => (failure = e))
            .finally(() => {
              finished = true;
              wake?.();
            });
          try {
            for (;;) {
              while (queue.length) {
                const d = queue.shift()!;
                yield d;
                if (d.type === 'done') return;
              }
              if (failure) throw failure;
              if (finished) return;
              await new Promise<void>((r) => (wake = r));
              wake = null;
            }
          } finally {
            signal?.removeEventListener('abort', onAbort);
            if (!finished && !gone) void remote.abort(id);
          }
        },
      };
    },
    async plan(width: number, height: number, o: VisionOptions = {}) {
      usable();
      return guard(remote.plan(width, height, o));
    },
    async reset() {
      usable();
      await guard(remote.reset());
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      try {
        if (!gone) await Promise.race([remote.dispose(), dead, new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
      } finally {
        markGone(new WebVLMError('Disposed', 'This engine was disposed.'));
        remote[Comlink.releaseProxy]();
        worker.terminate();
      }
    },
    [TEST_HOOKS]: {
      loseDevice: () => guard(remote.testLoseDevice()),
      crashWorker: () => guard(remote.testCrash()),
      abortAtPhase: (phase) => guard(remote.testAbortAtPhase(phase)),
      worker,
    },
  };
  return engine;
}
