/**
 * The typed errors webvlm throws. Every failure a user can meet maps to one stable `code`,
 * with a message that says what happened and a `hint` that says what to do about it.
 * Errors cross the worker boundary as plain objects (see `toErrorPayload` / `fromErrorPayload`).
 */
export type WebVLMErrorCode =
  | 'WebGPUUnavailable'
  | 'UnsupportedFeature'
  | 'UnsupportedModel'
  | 'CorruptCheckpoint'
  | 'DownloadFailed'
  | 'ModelNotFound'
  | 'ImageDecodeFailed'
  | 'InvalidImage'
  | 'ContextOverflow'
  | 'Aborted'
  | 'DeviceLost'
  | 'OutOfMemory'
  | 'QuotaExceeded'
  | 'Busy'
  | 'Disposed'
  | 'WorkerTerminated'
  | 'InvalidArgument'
  | 'ShapeMismatch'
  | 'BufferTooSmall'
  | 'ShaderCompile'
  | 'TemplateError'
  | 'NumericalError'
  | 'Internal';

const DEFAULT_HINTS: Record<WebVLMErrorCode, string> = {
  WebGPUUnavailable:
    'Use a browser with WebGPU enabled (Chrome/Edge 113+, or Safari/Firefox with WebGPU turned on) on a machine with a supported GPU.',
  UnsupportedFeature: 'This adapter lacks a feature the request needs; webvlm picks fallbacks automatically unless a variant is forced.',
  UnsupportedModel: 'Pick a supported model (see the README list) or check the checkpoint config.json.',
  CorruptCheckpoint: 'The checkpoint files are damaged or not what they claim; clear the cache for this model and download again.',
  DownloadFailed: 'Check the network connection and the base URL, then retry; partial downloads resume.',
  ModelNotFound: 'Check the model id, revision and base URL.',
  ImageDecodeFailed: 'Pass a PNG, JPEG, WebP or GIF image (URL, Blob, ImageBitmap, ImageData or <img>).',
  InvalidImage: 'Pass an image with a non-zero width and height within the supported size.',
  ContextOverflow: 'Shorten the conversation, lower maxTokens, or use fewer / lower-detail images.',
  Aborted: 'The request was aborted; the engine is ready for the next one.',
  DeviceLost: 'The GPU device was lost; the next call re-creates it and reloads the model from the cache.',
  OutOfMemory: 'Close other GPU-heavy tabs, or pick a smaller model.',
  QuotaExceeded: 'Free browser storage (engine.cache.clear() or site settings) or grant persistent storage.',
  Busy: 'Wait for the running request to finish, or abort it.',
  Disposed: 'Create a new engine; this one was disposed.',
  WorkerTerminated: "The engine's worker stopped (it crashed, ran out of memory, or was terminated); create a new engine.",
  InvalidArgument: 'Check the arguments against the API documentation.',
  ShapeMismatch: 'Check the tensor shapes passed to the kernel.',
  BufferTooSmall: 'Allocate a buffer large enough for the shape passed to the kernel.',
  ShaderCompile: 'This is a webvlm bug on this adapter; please report it with the adapter info.',
  TemplateError:
    "The model's chat template refused this conversation (its message says why): check the roles and their order — many templates need user/assistant turns to alternate, some allow no system message.",
  NumericalError:
    'The model computed NaN or infinite values: the weights may be damaged (clear the cache for this model and reload) or this GPU/driver computes wrongly; please report it with the adapter info.',
  Internal: 'This is a webvlm bug; please report it.',
};

export class WebVLMError extends Error {
  readonly code: WebVLMErrorCode;
  readonly hint: string;
  readonly details?: Record<string, unknown>;

  constructor(
    code: WebVLMErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'WebVLMError';
    this.code = code;
    this.hint = options.hint ?? DEFAULT_HINTS[code];
    this.details = options.details;
  }
}

export function isWebVLMError(e: unknown, code?: WebVLMErrorCode): e is WebVLMError {
  return e instanceof WebVLMError || (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'WebVLMError' && (code === undefined || (e as { code?: unknown }).code === code))
    ? code === undefined || (e as WebVLMError).code === code
    : false;
}

/** Plain-object form for postMessage / structured clone. */
export interface ErrorPayload {
  name: 'WebVLMError';
  code: WebVLMErrorCode;
  message: string;
  hint: string;
  details?: Record<string, unknown>;
}

export function toErrorPayload(e: unknown): ErrorPayload {
  if (e instanceof WebVLMError) return { name: 'WebVLMError', code: e.code, message: e.message, hint: e.hint, details: e.details };
  if (typeof DOMException !== 'undefined' && e instanceof DOMException) {
    if (e.name === 'AbortError') return toErrorPayload(new WebVLMError('Aborted', 'The request was aborted.'));
    if (e.name === 'QuotaExceededError') return toErrorPayload(new WebVLMError('QuotaExceeded', `Browser storage is full: ${e.message}`));
  }
  if (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'WebVLMError' && typeof (e as { code?: unknown }).code === 'string') {
    const w = e as ErrorPayload;
    return { name: 'WebVLMError', code: w.code, message: w.message, hint: w.hint, details: w.details };
  }
  const message = e instanceof Error ? e.message : String(e);
  return toErrorPayload(new WebVLMError('Internal', message));
}

export function fromErrorPayload(p: ErrorPayload): WebVLMError {
  return new WebVLMError(p.code, p.message, { hint: p.hint, details: p.details });
}
