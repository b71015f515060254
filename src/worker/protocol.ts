/**
 * What the main thread and the worker exchange (through comlink: RPC calls and proxied callbacks; no
 * hand-rolled messages). Errors keep their `code` across the boundary via a custom 'throw' handler.
 */
import * as Comlink from 'comlink';
import { WebVLMError, fromErrorPayload, toErrorPayload, type ErrorPayload } from '../errors.ts';
import type { ChatDelta, ChatMessage, EngineInfo, EngineOptions, GenerationOptions, ImagePlanReport, LoadProgress, VisionOptions } from '../types.ts';
import type { WorkerImage } from './image-decode.ts';

export interface WorkerChatRequest extends GenerationOptions, VisionOptions {
  /** Messages with every image part replaced by `{ type: 'image', index, detail? }` into `images`. */
  messages: ChatMessage[];
  images: WorkerImage[];
}

export interface WorkerLoadOptions {
  baseUrl?: string;
  revision?: string;
  headers?: Record<string, string>;
  weights?: EngineOptions['weights'];
  contextLength?: number;
  /** Cache downloaded files in browser storage (default true). */
  cache?: boolean;
  /** Total GPU bytes allowed; the load fails early with OutOfMemory above it. */
  memoryBudget?: number;
  /** Compile the shaders during the load (default true). */
  warmup?: boolean;
  /** 'folder': files at `{baseUrl}/{model}/{file}` instead of the hub layout. */
  layout?: 'hub' | 'folder';
}

export interface WorkerApi {
  /**
   * Takes the Web Lock `lockName` and keeps it until the worker ends, so the main thread notices termination.
   * false where this worker has no Web Locks (then only the worker's `error` event is watched).
   */
  hold(lockName: string): Promise<boolean>;
  load(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgress) => void): Promise<EngineInfo>;
  /** Aborts a load in progress (it rejects with `Aborted`). */
  abortLoad(): void;
  /** Streams deltas to `onDelta`; resolves when the answer is complete. `id` names the request for `abort`. */
  chat(id: number, req: WorkerChatRequest, onDelta: (d: ChatDelta) => void): Promise<void>;
  abort(id: number): void;
  /** The tile plan an image of this size gets (for overlays), without running anything. */
  plan(width: number, height: number, opts: VisionOptions): Promise<ImagePlanReport>;
  /** Forgets the cached conversation, after the running request (queued like a request). */
  reset(): Promise<void> | void;
  /** Aborts what runs, waits for it, frees the GPU memory. */
  dispose(): Promise<void> | void;
  /** Test-only: destroys the GPU device, as a driver reset would (device-loss tests). */
  testLoseDevice(): void;
  /** Test-only: ends the worker from inside (`self.close()`), as a crash would. */
  testCrash(): void;
  /** Test-only: the next chat is aborted as it enters this phase (deterministic abort-in-prefill tests). */
  testAbortAtPhase(phase: 'encode' | 'prefill'): void;
}

let installed = false;
/**
 * Makes whatever the other side throws arrive as a `WebVLMError` (code, message, hint, details); untyped throws
 * become `Internal`, DOM abort errors `Aborted`. Call on both sides. Comlink's own 'throw' handler only decides
 * what is a throw (its private marker); we replace how it is sent.
 */
export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const original = Comlink.transferHandlers.get('throw')!;
  const handler: Comlink.TransferHandler<{ value: unknown }, ErrorPayload> = {
    canHandle: (v: unknown): v is { value: unknown } => original.canHandle(v),
    serialize: (v) => [toErrorPayload(v.value), []],
    deserialize: (p) => {
      throw fromErrorPayload(p);
    },
  };
  Comlink.transferHandlers.set('throw', handler as unknown as Comlink.TransferHandler<unknown, unknown>);
}

export { WebVLMError };
