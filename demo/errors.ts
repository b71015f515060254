/**
 * What the demo tells a user about a failure: a title, the library's message, and what to do *in this page*
 * (the library's `hint` speaks to developers; here some codes get page-specific advice).
 */
export interface ErrorView {
  code: string;
  title: string;
  message: string;
  todo: string;
}

interface Advice {
  title: string;
  todo?: string;
  /** For the embedded models, served from this repo's models/ folder. */
  todoLocal?: string;
}

const ADVICE: Record<string, Advice> = {
  WebGPUUnavailable: {
    title: 'This browser has no usable WebGPU.',
    todo: 'Open this page in Chrome or Edge 113+ (on Linux, enable chrome://flags/#enable-unsafe-webgpu), Safari 26+ or Firefox 141+, on a machine with a supported GPU, and check that hardware acceleration is on.',
  },
  ModelNotFound: {
    title: 'The model was not found.',
    todo: 'Check the model id and your internet connection; private or gated models need an access token. Or pick an embedded model.',
    todoLocal: 'Start the demo with `npm run demo` from a full checkout: it serves the committed tiny model (models/tiny/checkpoint) and writes the random test checkpoint to models/generated/test.',
  },
  UnsupportedModel: { title: 'This model cannot run here.', todo: 'Pick one of the listed models (SmolVLM / Idefics3 layout).' },
  OutOfMemory: {
    title: 'Not enough GPU memory for this model.',
    todo: 'Pick a smaller model, close other GPU-heavy tabs and press Load again; for long chats, press New chat or use a lower image detail.',
  },
  DeviceLost: { title: 'The GPU was reset.', todo: 'Ask again: the model reloads from the browser cache. If it keeps happening, close other GPU-heavy tabs.' },
  WorkerTerminated: { title: 'The model worker stopped (it may have run out of memory).', todo: 'Press Load to start it again; pick a smaller model if it happens again.' },
  DownloadFailed: { title: 'Downloading the model failed.', todo: 'Check your internet connection and press Load again; the download resumes where it stopped.' },
  CorruptCheckpoint: { title: 'The model files are damaged.', todo: 'Clear this site’s storage (the cached model) and press Load again.' },
  QuotaExceeded: { title: 'Browser storage is full.', todo: 'Free some storage (site settings → clear data for other sites), then press Load again.' },
  ContextOverflow: { title: 'The conversation no longer fits in the model’s context.', todo: 'Press New chat, ask shorter questions, or use a lower image detail / max image tokens.' },
  ImageDecodeFailed: { title: 'That image could not be read.', todo: 'Use a PNG, JPEG, WebP or GIF file.' },
  InvalidImage: { title: 'That image cannot be used.', todo: 'Use an image with a non-zero size, at most 64 megapixels (downscale it first).' },
  CameraUnavailable: { title: 'The camera is not available.', todo: 'Allow camera access for this page in the browser’s site settings, or drop an image instead.' },
};

export function describeError(e: unknown, ctx: { localModel: boolean }): ErrorView {
  const err = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as { code?: string; message?: string; hint?: string };
  const code = err.code ?? 'Unknown';
  const a = ADVICE[code];
  return {
    code,
    title: a?.title ?? 'Something went wrong.',
    message: err.message ?? String(e),
    todo: (ctx.localModel && a?.todoLocal) || a?.todo || err.hint || 'Reload the page; if it happens again, report it with the message above.',
  };
}
