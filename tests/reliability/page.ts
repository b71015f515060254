/**
 * Browser side of the reliability tests: Playwright calls `window.__rel.*` to drive the public API
 * (`createEngine`, `modelCache`) in this page, with the test-only hooks for device loss and worker crashes.
 * Requests and images cross `page.evaluate` as plain JSON; images are built here from small specs.
 */
import { createEngine, TEST_HOOKS, type TestHooks, type WebVLMEngine } from '../../src/api/engine.ts';
import { modelCache } from '../../src/engine/cache.ts';
import { decodeImage } from '../../src/worker/image-decode.ts';
import type { ChatMessage, ChatRequest, EngineOptions, LoadProgress } from '../../src/types.ts';

export type ImageSpec =
  | { kind: 'solid'; w: number; h: number; rgb?: [number, number, number]; as?: 'imagedata' | 'png' | 'canvas' | 'bitmap' }
  /** Raw file bytes (crafted PNG headers, GIFs, junk). */
  | { kind: 'bytes'; base64: string; type: string };

export interface ErrorInfo {
  name: string;
  code?: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

const toError = (e: unknown): ErrorInfo => {
  const x = e as { name?: string; code?: string; message?: string; hint?: string; details?: Record<string, unknown> };
  return { name: x?.name ?? typeof e, code: x?.code, message: x?.message ?? String(e), hint: x?.hint, details: x?.details ? JSON.parse(JSON.stringify(x.details)) : undefined };
};

async function buildImage(s: ImageSpec): Promise<ImageData | Blob | OffscreenCanvas | ImageBitmap> {
  if (s.kind === 'bytes') return new Blob([Uint8Array.from(atob(s.base64), (c) => c.charCodeAt(0))], { type: s.type });
  const as = s.as ?? 'imagedata';
  if (as === 'canvas') {
    const c = new OffscreenCanvas(s.w, s.h);
    if (s.w && s.h) {
      const ctx = c.getContext('2d')!;
      ctx.fillStyle = `rgb(${(s.rgb ?? [200, 30, 30]).join(',')})`;
      ctx.fillRect(0, 0, s.w, s.h);
    }
    return c;
  }
  const d = new ImageData(s.w, s.h);
  const [r, g, b] = s.rgb ?? [200, 30, 30];
  for (let i = 0; i < d.data.length; i += 4) {
    // A little structure so tiles differ.
    d.data[i] = r ^ ((i >> 4) & 15);
    d.data[i + 1] = g;
    d.data[i + 2] = b;
    d.data[i + 3] = 255;
  }
  if (as === 'imagedata') return d;
  if (as === 'bitmap') return createImageBitmap(d);
  const c = new OffscreenCanvas(s.w, s.h);
  c.getContext('2d')!.putImageData(d, 0, 0);
  return c.convertToBlob({ type: 'image/png' });
}

/** Replaces `{ __img: spec }` image values in a JSON request by real images. */
async function materialize(messages: unknown[]): Promise<ChatMessage[]> {
  const out: ChatMessage[] = [];
  for (const m of messages as Array<{ role: ChatMessage['role']; content: unknown }>) {
    if (typeof m.content === 'string') {
      out.push(m as ChatMessage);
      continue;
    }
    const parts = [];
    for (const p of m.content as Array<Record<string, unknown>>) {
      const img = p.image as { __img?: ImageSpec } | undefined;
      parts.push(img?.__img ? { ...p, image: await buildImage(img.__img) } : p);
    }
    out.push({ role: m.role, content: parts as ChatMessage['content'] });
  }
  return out;
}

const engines = new Map<string, WebVLMEngine>();
const hooks = (name: string) => (engines.get(name) as unknown as Record<symbol, TestHooks>)[TEST_HOOKS];

export interface ChatPlan extends Omit<ChatRequest, 'messages' | 'signal'> {
  messages: unknown[];
  /** Abort after this many text deltas (0: right after the request starts). */
  abortAfterDeltas?: number;
  /** Abort as the worker enters this phase: deterministic, unlike a timer that a fast machine can outrun. */
  abortAtPhase?: 'encode' | 'prefill';
  loseDeviceAfterDeltas?: number;
  crashAfterDeltas?: number;
  /** `worker.terminate()` from this thread when this many text deltas have arrived. */
  terminateAfterDeltas?: number;
  /** Abort right after the stream's first `next()` call, while this thread still prepares the images. */
  abortWhilePreparing?: boolean;
  /** `engine.reset()` (not awaited) when this many text deltas have arrived; its settle time is in `resetAt`. */
  resetAfterDeltas?: number;
  /** `engine.dispose()` (not awaited) when this many text deltas have arrived; its settle time is in `disposedAt`. */
  disposeAfterDeltas?: number;
}

export interface ChatOutcome {
  ok: boolean;
  text: string;
  deltas: number;
  finishReason?: string;
  usage?: Record<string, unknown>;
  error?: ErrorInfo;
  ms: number;
  /** performance.now() when the request started; `start + ms` is when it ended. */
  start: number;
  /** performance.now() of each delta, for ordering checks across concurrent chats. */
  times: number[];
  /** When the reset / dispose started by the plan settled (performance.now()), and how. */
  resetAt?: number;
  disposedAt?: number;
  sideError?: ErrorInfo;
}

async function chat(name: string, plan: ChatPlan): Promise<ChatOutcome> {
  const { messages, ...rest } = plan;
  return run(name, { ...rest, messages: await materialize(messages) });
}

/** Runs one request whose messages are already real (materialized); see ChatPlan for the fault options. */
async function run(name: string, plan: Omit<ChatPlan, 'messages'> & { messages: ChatMessage[] }): Promise<ChatOutcome> {
  const t0 = performance.now();
  const engine = engines.get(name);
  if (!engine) throw new Error(`no engine ${name}`);
  const { messages, abortAfterDeltas, abortAtPhase, loseDeviceAfterDeltas, crashAfterDeltas, terminateAfterDeltas, abortWhilePreparing, resetAfterDeltas, disposeAfterDeltas, ...rest } = plan;
  const ctrl = new AbortController();
  if (abortAtPhase !== undefined) await hooks(name).abortAtPhase(abortAtPhase);
  if (abortAfterDeltas === 0) queueMicrotask(() => ctrl.abort());
  let text = '';
  let deltas = 0;
  const times: number[] = [];
  const side: { resetAt?: number; disposedAt?: number; sideError?: ErrorInfo } = {};
  const pending: Promise<unknown>[] = [];
  const sideCall = (p: Promise<void>, key: 'resetAt' | 'disposedAt') =>
    void pending.push(p.then(() => (side[key] = performance.now()), (e) => ((side.sideError = toError(e)), (side[key] = performance.now()))));
  /** The outcome, once the reset / dispose the plan started has settled too. */
  const settle = async (o: ChatOutcome): Promise<ChatOutcome> => {
    await Promise.all(pending);
    return { ...o, ...side };
  };
  try {
    const req: ChatRequest = { ...rest, messages, signal: ctrl.signal };
    const it = engine.chat(req)[Symbol.asyncIterator]();
    const first = it.next();
    if (abortWhilePreparing) ctrl.abort();
    for (let r = await first; !r.done; r = await it.next()) {
      const d = r.value;
      times.push(performance.now());
      if (d.type === 'text') {
        text += d.text;
        deltas++;
        if (deltas === abortAfterDeltas) ctrl.abort();
        if (deltas === loseDeviceAfterDeltas) void hooks(name).loseDevice();
        if (deltas === crashAfterDeltas) void hooks(name).crashWorker();
        if (deltas === terminateAfterDeltas) hooks(name).worker!.terminate();
        if (deltas === resetAfterDeltas) sideCall(engine.reset(), 'resetAt');
        if (deltas === disposeAfterDeltas) sideCall(engine.dispose(), 'disposedAt');
      } else {
        return settle({ ok: true, text, deltas, finishReason: d.finishReason, usage: JSON.parse(JSON.stringify(d.usage)), ms: performance.now() - t0, start: t0, times });
      }
    }
    return settle({ ok: false, text, deltas, error: { name: 'Error', message: 'stream ended without a done delta' }, ms: performance.now() - t0, start: t0, times });
  } catch (e) {
    return settle({ ok: false, text, deltas, error: toError(e), ms: performance.now() - t0, start: t0, times });
  }
}

(window as unknown as { __rel: unknown }).__rel = {
  async load(name: string, model: string, opts: Omit<EngineOptions, 'onProgress' | 'signal'> & { abortAfterProgress?: number; abortAfterMs?: number } = {}) {
    const t0 = performance.now();
    const progress: LoadProgress[] = [];
    const { abortAfterProgress, abortAfterMs, ...o } = opts;
    const ctrl = new AbortController();
    if (abortAfterMs !== undefined) setTimeout(() => ctrl.abort(), abortAfterMs);
    try {
      const engine = await createEngine(model, {
        ...o, signal: ctrl.signal,
        onProgress: (p) => {
          progress.push(p);
          if (abortAfterProgress !== undefined && progress.filter((x) => x.phase === 'download' && x.loaded > 0).length >= abortAfterProgress) ctrl.abort();
        },
      });
      engines.set(name, engine);
      return { ok: true, info: engine.info, progress: progress.length, downloads: progress.filter((p) => p.phase === 'download').length, ms: performance.now() - t0 };
    } catch (e) {
      return { ok: false, error: toError(e), progress: progress.length, ms: performance.now() - t0 };
    }
  },
  chat,
  /** Two chats started together; each outcome carries its delta times. */
  async chatPair(name: string, a: ChatPlan, b: ChatPlan) {
    const [ra, rb] = await Promise.all([chat(name, a), chat(name, b)]);
    return [ra, rb];
  },
  /** Chats started together (their images built first, then every chat() called in one go), in call order. */
  async chatMany(name: string, plans: ChatPlan[]) {
    const real = await Promise.all(plans.map(async (p) => ({ ...p, messages: await materialize(p.messages) })));
    return Promise.all(real.map((p) => run(name, p)));
  },
  /**
   * Streams created and never read (one dropped, one return()ed before reading), then a chat that must still be
   * answered: the engine's queue is not held by them.
   */
  async unreadStreams(name: string, plan: ChatPlan) {
    const engine = engines.get(name)!;
    const messages = await materialize(plan.messages);
    const { messages: _m, ...rest } = plan;
    engine.chat({ ...rest, messages });
    const s = engine.chat({ ...rest, messages })[Symbol.asyncIterator]();
    await s.return?.();
    return run(name, { ...rest, messages });
  },
  async reset(name: string) {
    try {
      await engines.get(name)!.reset();
      return { ok: true };
    } catch (e) {
      return { ok: false, error: toError(e) };
    }
  },
  async plan(name: string, w: number, h: number) {
    try {
      return { ok: true, plan: await engines.get(name)!.plan(w, h, { detail: 'low' }) };
    } catch (e) {
      return { ok: false, error: toError(e) };
    }
  },
  async dispose(name: string) {
    await engines.get(name)?.dispose();
    engines.delete(name);
  },
  /** Terminates the engine's worker from outside, as a page or browser might. */
  terminateWorker(name: string) {
    hooks(name).worker!.terminate();
  },
  async decode(spec: ImageSpec) {
    try {
      const img = await buildImage(spec);
      const p = await decodeImage(img as Blob | ImageData);
      return { ok: true, width: p.width, height: p.height, first: [...p.data.subarray(0, 4)] };
    } catch (e) {
      return { ok: false, error: toError(e) };
    }
  },
  cache: {
    list: () => modelCache.list(),
    delete: (model: string) => modelCache.delete(model),
    clear: () => modelCache.clear(),
    available: () => modelCache.available,
  },
  estimate: () => navigator.storage.estimate().then((e) => ({ usage: e.usage, quota: e.quota })),
  /** Flips one byte inside the cached copy of `file` (OPFS or Cache API), to test eviction. Returns the backend. */
  async corruptCached(file: string, at: number) {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('webvlm-models-v1').catch(() => null);
    if (dir) {
      // Every cached copy of the file (earlier tests cached it under other base URLs too): corrupting only the
      // first one listed could hit a stale copy the next load never reads.
      let found = false;
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) {
        if (!name.endsWith(`-${file}`)) continue;
        const fh = await dir.getFileHandle(name);
        const f = await fh.getFile();
        const byte = new Uint8Array(await f.slice(at, at + 1).arrayBuffer());
        const w = await (fh as unknown as { createWritable(o: object): Promise<FileSystemWritableFileStream> }).createWritable({ keepExistingData: true });
        await w.write({ type: 'write', position: at, data: new Uint8Array([byte[0] ^ 0xff]) });
        await w.close();
        found = true;
      }
      if (found) return 'opfs';
    }
    const cache = await caches.open('webvlm-models-v1');
    for (const req of await cache.keys()) {
      if (!req.url.endsWith(`-${file.replace(/[^A-Za-z0-9._-]/g, '_')}`)) continue;
      const bytes = new Uint8Array(await (await cache.match(req))!.arrayBuffer());
      bytes[at] ^= 0xff;
      await cache.put(req, new Response(bytes));
      return 'cache';
    }
    return null;
  },
};
document.getElementById('status')!.textContent = 'ready';
