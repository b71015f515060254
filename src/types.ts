/** Public types of the webvlm API (main thread). */
import type { WebVLMErrorCode } from './errors.ts';

/** Anything webvlm accepts as an image. Main-thread-only kinds are converted before they reach the worker. */
export type ImageInput = string | URL | Blob | ImageBitmap | ImageData | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas;

export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; image: ImageInput; detail?: ImageDetail }
  /** OpenAI shape: `{ type: 'image_url', image_url: { url, detail } }`. */
  | { type: 'image_url'; image_url: { url: string; detail?: ImageDetail } };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ContentPart[];
}

/** OpenAI-style budget: `low` = one global frame, `auto` = native tiling (never upscale), `high` = the checkpoint's own rules. */
export type ImageDetail = 'low' | 'auto' | 'high';
export type TilingMode = 'model' | 'native';

export interface VisionOptions {
  /** Default per-image detail when a part gives none. Default 'high' (the checkpoint's rules, exactly). */
  detail?: ImageDetail;
  /** Cap on visual tokens per image: the largest tile grid under the budget is chosen. */
  maxImageTokens?: number;
  /**
   * Low-resolution-query compression of each frame's visual tokens (training-free; pooled s×s queries attend to
   * their window of the frame's tokens): `{ factor: 2 }` turns SmolVLM's 64 tokens per frame into 16. Off by default.
   */
  compression?: { factor: number } | number | false;
}

export interface GenerationOptions {
  maxTokens?: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** Sampling seed, an integer from 0 to 2³²−1 (same seed, same tokens). */
  seed?: number;
  /** Strings that end the answer (not included in it). An array, even for one. */
  stop?: string[];
}

export interface ChatRequest extends GenerationOptions, VisionOptions {
  messages: ChatMessage[];
  signal?: AbortSignal;
}

export interface ImageReport {
  width: number;
  height: number;
  mode: string;
  rows: number;
  cols: number;
  frames: number;
  /** Tiles in source-image pixel coordinates, for overlays: [x, y, w, h]. */
  tiles: Array<[number, number, number, number]>;
  visualTokensBeforeCompression: number;
  visualTokens: number;
}

/** Where an image's tiles fall and what it costs, before running anything. */
export type ImagePlanReport = Omit<ImageReport, 'width' | 'height'> & { width: number; height: number };

export interface Usage {
  promptTokens: number;
  visualTokens: number;
  completionTokens: number;
  /** Tokens of the prompt reused from the previous turn's KV cache. */
  cachedTokens: number;
  imageEncodeMs: number;
  prefillMs: number;
  timeToFirstTokenMs: number;
  decodeMs: number;
  decodeTokensPerSecond: number;
  images: ImageReport[];
}

export type FinishReason = 'stop' | 'length' | 'abort';

export type ChatDelta =
  | { type: 'text'; text: string }
  | { type: 'done'; text: string; finishReason: FinishReason; usage: Usage };

/**
 * Load progress. Drive a progress bar with `fraction` (0 → 1: only grows, 1 exactly at `ready`) or
 * `bytesLoaded / bytesTotal` (every file of the checkpoint; the total is known from the files' sizes before the
 * weights download). Phases, in order: `download` (files arriving; `parse` and `quantize`/`upload` events interleave
 * with it, as tensors are converted while their bytes stream in), `compile` (first-use shader compilation: one
 * warm-up pass), `ready`. `file`, `loaded` and `total` describe the current file (bytes), tensor (`quantize`/`upload`:
 * tensors done of the checkpoint's count) or compile step.
 */
export interface LoadProgress {
  phase: 'download' | 'parse' | 'quantize' | 'upload' | 'compile' | 'ready';
  file?: string;
  loaded: number;
  total: number;
  fraction: number;
  bytesLoaded: number;
  bytesTotal: number;
}

/**
 * A WebGPU `GPU` object (`navigator.gpu`, or Dawn's `create([])` in Node), typed structurally so that the public
 * declarations do not need the WebGPU type globals.
 */
export interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown>;
}

/** How a part's linear weights are stored on the GPU. */
export type WeightFormat = 'int4' | 'f32';

export interface EngineOptions {
  /**
   * Hub base URL; default https://huggingface.co. Files are read from `{baseUrl}/{model}/resolve/{revision}/{file}`
   * (or `{baseUrl}/{model}/{file}` with `layout: 'folder'`). Ignored when the model id is itself a folder URL.
   */
  baseUrl?: string;
  /**
   * Where files sit under `baseUrl`: 'hub' (default, `{model}/resolve/{revision}/{file}`, what the Hugging Face hub and
   * a mirror of it serve) or 'folder' (`{model}/{file}`, a plain directory per model on a static host).
   */
  layout?: 'hub' | 'folder';
  revision?: string;
  /**
   * Linear weights on the GPU: 'int4' (default: quantized on load) or 'f32' (reference quality, 8× the memory), for
   * the whole model or per part: `{ vision: 'f32', text: 'int4' }` keeps the vision tower and connector exact and
   * quantizes the decoder (a part left out is 'int4').
   */
  weights?: WeightFormat | { vision?: WeightFormat; text?: WeightFormat };
  onProgress?: (p: LoadProgress) => void;
  /**
   * Run the model in the calling thread instead of a Web Worker (Node, tests, or a page that runs webvlm inside its
   * own worker). Default false. Generation then shares the thread with the caller's code.
   */
  inline?: boolean;
  /**
   * With `inline`: the `GPU` object to use instead of `navigator.gpu` (in Node, `create([])` from the `webgpu` package).
   * Images in Node: pass `{ width, height, data }` RGBA objects (ImageData-like), or a URL.
   */
  gpu?: GpuLike;
  /**
   * Keep downloaded files in browser storage (default true): the next load of the same model, revision and base URL
   * reads nothing from the network and works offline. Manage it with `modelCache` (list / delete / clear).
   * When storage is full the load fails with `QuotaExceeded` (saying how much is needed); `cache: false` loads anyway.
   */
  cache?: boolean;
  /**
   * GPU memory budget in bytes. Before downloading weights, the memory the model needs (weights in the chosen format,
   * KV cache for `contextLength`, activations) is estimated; above the budget — or when one buffer would exceed the
   * adapter's `maxBufferSize` / `maxStorageBufferBindingSize` — the load fails at once with `OutOfMemory`.
   * Default: no total budget (WebGPU does not tell how much memory a GPU has); the per-buffer limits always apply.
   */
  memoryBudget?: number;
  /**
   * Compile the shaders during the load (default true): one warm-up pass, reported as the `compile` phase, so the
   * first answer does not wait for pipeline compilation (seconds on some adapters).
   */
  warmup?: boolean;
  /** KV-cache capacity in tokens; default min(4096, the model's max_position_embeddings). */
  contextLength?: number;
  /** Extra request headers for the hub (e.g. `Authorization: Bearer hf_…` for gated models). */
  headers?: Record<string, string>;
  /** Aborts the load: `createEngine` rejects with `Aborted` and the worker is ended. */
  signal?: AbortSignal;
  /** A worker running `webvlm/worker` to use instead of creating one (bundlers that need it spelled out). */
  worker?: Worker;
}

/** The estimate the load was checked against, in bytes. */
export interface MemoryReport {
  weights: number;
  kvCache: number;
  activations: number;
  total: number;
}

export interface EngineInfo {
  model: string;
  adapter: string;
  /** The formats loaded: 'int4', 'f32', or e.g. 'vision f32 / text int4'. */
  weights: string;
  gpuBytes: number;
  loadMs: number;
  contextLength: number;
  /** The GPU memory estimate made before loading. */
  memory?: MemoryReport;
}

export interface ErrorInfo {
  code: WebVLMErrorCode;
  message: string;
  hint: string;
}
