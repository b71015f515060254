/**
 * `createEngine()`: the main-thread API. The model runs in a Web Worker (module worker, bundled by Vite);
 * this side only converts images to transferable forms, forwards abort signals and turns the worker's
 * callbacks into an async iterator.
 */
import * as Comlink from 'comlink';
import { WebVLMError } from '../errors.ts';
import { installErrorTransfer, type WorkerApi, type WorkerChatRequest } from '../worker/protocol.ts';
import type { WorkerImage } from '../worker/image-decode.ts';
import type { ChatDelta, ChatMessage, ChatRequest, ContentPart, EngineInfo, EngineOptions, ImageInput, ImagePlanReport, VisionOptions } from './types.ts';

export interface WebVLMEngine {
  readonly info: EngineInfo;
  /** Streams the answer; the last delta is `{ type: 'done', usage, finishReason }`. */
  chat(req: ChatRequest): AsyncIterable<ChatDelta>;
  /** The tile plan an image of this size gets under `opts` (for overlays and token budgets). */
  plan(width: number, height: number, opts?: VisionOptions): Promise<ImagePlanReport>;
  /** Forgets the conversation cached on the GPU (the next chat re-reads the whole history). */
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

let nextId = 1;

async function toWorkerImage(img: ImageInput): Promise<WorkerImage> {
  if (typeof img === 'string') return new URL(img, globalThis.location?.href).href;
  if (img instanceof URL) return img.href;
  if (typeof Blob !== 'undefined' && img instanceof Blob) return img;
  if (typeof ImageData !== 'undefined' && img instanceof ImageData) return img;
  if (typeof ImageBitmap !== 'undefined' && img instanceof ImageBitmap) return img;
  if (typeof HTMLImageElement !== 'undefined' && img instanceof HTMLImageElement) {
    try {
      await img.decode();
    } catch (cause) {
      throw new WebVLMError('ImageDecodeFailed', `The <img> (${img.currentSrc || img.src}) could not be decoded.`, { cause });
    }
  }
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
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: m.content });
      continue;
    }
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

export async function createEngine(model: string, opts: EngineOptions & { contextLength?: number; worker?: Worker } = {}): Promise<WebVLMEngine> {
  installErrorTransfer();
  const worker = opts.worker ?? new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'webvlm' });
  const remote = Comlink.wrap<WorkerApi>(worker);
  let disposed = false;
  let info: EngineInfo;
  try {
    info = await remote.load(model, { baseUrl: opts.baseUrl, revision: opts.revision, weights: opts.weights, contextLength: opts.contextLength }, Comlink.proxy((p) => opts.onProgress?.(p)));
  } catch (e) {
    worker.terminate();
    throw e;
  }

  return {
    get info() {
      return info;
    },
    chat(req: ChatRequest): AsyncIterable<ChatDelta> {
      if (disposed) throw new WebVLMError('Disposed', 'This engine was disposed.');
      const { signal, messages, ...rest } = req;
      return {
        async *[Symbol.asyncIterator]() {
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
          remote
            .chat(id, Comlink.transfer(wreq, transfer), Comlink.proxy((d: ChatDelta) => {
              queue.push(d);
              wake?.();
            }))
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
            if (!finished) void remote.abort(id);
          }
        },
      };
    },
    plan(width: number, height: number, o: VisionOptions = {}) {
      return remote.plan(width, height, o);
    },
    async reset() {
      await remote.reset();
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      try {
        await remote.dispose();
      } finally {
        remote[Comlink.releaseProxy]();
        worker.terminate();
      }
    },
  };
}
