/**
 * What the main thread and the worker exchange (through comlink: RPC calls and proxied callbacks; no
 * hand-rolled messages). Errors keep their `code` across the boundary via a custom 'throw' handler.
 */
import * as Comlink from 'comlink';
import { WebVLMError, fromErrorPayload, toErrorPayload, type ErrorPayload } from '../errors.ts';
import type { ChatDelta, ChatMessage, EngineInfo, GenerationOptions, ImagePlanReport, LoadProgress, VisionOptions } from '../api/types.ts';
import type { WorkerImage } from './image-decode.ts';

export interface WorkerChatRequest extends GenerationOptions, VisionOptions {
  /** Messages with every image part replaced by `{ type: 'image', index, detail? }` into `images`. */
  messages: ChatMessage[];
  images: WorkerImage[];
}

export interface WorkerLoadOptions {
  baseUrl?: string;
  revision?: string;
  weights?: 'int4' | 'f32';
  contextLength?: number;
}

export interface WorkerApi {
  load(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgress) => void): Promise<EngineInfo>;
  /** Streams deltas to `onDelta`; resolves when the answer is complete. `id` names the request for `abort`. */
  chat(id: number, req: WorkerChatRequest, onDelta: (d: ChatDelta) => void): Promise<void>;
  abort(id: number): void;
  /** The tile plan an image of this size gets (for overlays), without running anything. */
  plan(width: number, height: number, opts: VisionOptions): ImagePlanReport;
  reset(): void;
  dispose(): void;
}

let installed = false;
/** Makes thrown WebVLMErrors arrive as WebVLMErrors (code, hint) on the other side. Call on both sides. */
export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  const handler: Comlink.TransferHandler<{ value: unknown }, ErrorPayload> = {
    canHandle: (v: unknown): v is { value: unknown } => typeof v === 'object' && v !== null && 'value' in v && (v as { value: unknown }).value instanceof Error,
    serialize: (v) => [toErrorPayload(v.value), []],
    deserialize: (p) => {
      throw fromErrorPayload(p);
    },
  };
  Comlink.transferHandlers.set('throw', handler as unknown as Comlink.TransferHandler<unknown, unknown>);
}

export { WebVLMError };
