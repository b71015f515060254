/** Turns what the API accepts as an image into pixels, in the worker (no DOM; OffscreenCanvas + createImageBitmap). */
import { WebVLMError } from '../errors.ts';
import type { PixelImage } from '../input/resample.ts';
import { abortError, fetchWithDeadline, readBody, timeoutDetails } from '../engine/http-util.ts';

/** What crosses into the worker: already-decoded pixels, a bitmap, a blob, or a URL to fetch. */
export type WorkerImage = ImageData | ImageBitmap | Blob | string;

/** Largest decoded area accepted (a 20000×20000 image would need 1.6 GB of RGBA). */
export const MAX_IMAGE_PIXELS = 64 * 1024 * 1024;

/** Throws `InvalidImage` for an empty or oversized image (before anything is decoded or allocated). */
export function checkImageSize(width: number, height: number, what = 'The image'): void {
  if (!(width > 0 && height > 0)) throw new WebVLMError('InvalidImage', `${what} is ${width}×${height}; it needs a non-zero width and height.`, { details: { width, height } });
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new WebVLMError('InvalidImage', `${what} is ${width}×${height} (${((width * height) / 1e6).toFixed(0)} MP); at most ${MAX_IMAGE_PIXELS / 1024 / 1024} MP are accepted.`, {
      hint: 'Downscale the image before passing it.', details: { width, height, maxPixels: MAX_IMAGE_PIXELS },
    });
  }
}

/**
 * Width and height from the file header (PNG, GIF, JPEG, WebP, BMP), so an image too big to decode is refused before
 * the browser allocates its pixels. null when the format is not recognised or the size is not in `bytes`.
 */
export function sniffImageSize(b: Uint8Array): { width: number; height: number; format: string } | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ascii = (at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));
  if (b.length >= 24 && b[0] === 0x89 && ascii(1, 3) === 'PNG' && ascii(12, 4) === 'IHDR') {
    return { width: dv.getUint32(16), height: dv.getUint32(20), format: 'png' };
  }
  if (b.length >= 10 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) {
    return { width: dv.getUint16(6, true), height: dv.getUint16(8, true), format: 'gif' };
  }
  if (b.length >= 26 && ascii(0, 2) === 'BM') {
    return { width: Math.abs(dv.getInt32(18, true)), height: Math.abs(dv.getInt32(22, true)), format: 'bmp' };
  }
  if (b.length >= 30 && ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') {
    const kind = ascii(12, 4);
    if (kind === 'VP8X') return { width: 1 + (dv.getUint32(24, true) & 0xffffff), height: 1 + (dv.getUint32(27, true) & 0xffffff), format: 'webp' };
    if (kind === 'VP8L' && b[20] === 0x2f) {
      const bits = dv.getUint32(21, true);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >>> 14) & 0x3fff), format: 'webp' };
    }
    if (kind === 'VP8 ') return { width: dv.getUint16(26, true) & 0x3fff, height: dv.getUint16(28, true) & 0x3fff, format: 'webp' };
    return null;
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    // JPEG: walk the segments to the first start-of-frame (SOF0–SOF15 except DHT/JPG/DAC).
    let at = 2;
    while (at + 9 < b.length) {
      if (b[at] !== 0xff) return null;
      const marker = b[at + 1];
      if (marker === 0xff) {
        at++;
        continue;
      }
      if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
        at += 2;
        continue;
      }
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { width: dv.getUint16(at + 7), height: dv.getUint16(at + 5), format: 'jpeg' };
      }
      at += 2 + dv.getUint16(at + 2);
    }
  }
  return null;
}

/** Bytes read from the start of a blob to find its size (a JPEG's frame header may follow a large EXIF block). */
const SNIFF_BYTES = 256 * 1024;

/** Deadlines for image URLs (ms): response headers, and the longest pause between body chunks. Tests may lower them. */
export const IMAGE_FETCH_DEFAULTS = { headersTimeoutMs: 30_000, idleTimeoutMs: 30_000 };

export interface ImageFetchOptions {
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/**
 * An image URL's bytes, under deadlines (a server that never answers must not hang the chat): a timeout or a
 * network error is `ImageDecodeFailed` naming the URL (and the wait), an abort through `signal` is `Aborted`.
 * `ImageDecodeFailed` rather than `DownloadFailed`: the image is the caller's input, like a bad blob, and
 * `DownloadFailed` means the model's files.
 */
async function fetchImage(url: string, signal: AbortSignal | undefined, o: ImageFetchOptions): Promise<Blob> {
  const shown = url.length > 100 ? `${url.slice(0, 100)}…` : url;
  const what = `Fetching the image at ${shown}`;
  const headersMs = o.headersTimeoutMs ?? IMAGE_FETCH_DEFAULTS.headersTimeoutMs;
  const idleMs = o.idleTimeoutMs ?? IMAGE_FETCH_DEFAULTS.idleTimeoutMs;
  const fail = (cause: unknown, why: string) => {
    if (signal?.aborted) return abortError(what, signal.reason);
    if (cause instanceof WebVLMError) return cause;
    return new WebVLMError('ImageDecodeFailed', `${what} failed: ${why}.`, {
      cause, hint: 'Check that the image URL answers (and allows this origin through CORS), or pass the image as a Blob, ImageBitmap or ImageData.',
      details: { url: shown, ...timeoutDetails(cause) },
    });
  };
  let r: Awaited<ReturnType<typeof fetchWithDeadline>>;
  try {
    r = await fetchWithDeadline(url, {}, { fetch: (i, init) => globalThis.fetch(i, init), headersMs, signal, what });
  } catch (cause) {
    throw fail(cause, cause instanceof Error ? cause.message : String(cause));
  }
  try {
    if (!r.res.ok) {
      await r.res.body?.cancel().catch(() => {});
      throw new WebVLMError('ImageDecodeFailed', `${what} failed: HTTP ${r.res.status}.`, { details: { url: shown, status: r.res.status } });
    }
    const bytes = await readBody(r.res, { conn: r.conn, idleMs, signal, what });
    return new Blob([bytes as Uint8Array<ArrayBuffer>], { type: r.res.headers.get('content-type') ?? '' });
  } catch (cause) {
    throw fail(cause, cause instanceof Error ? cause.message : String(cause));
  } finally {
    r.close();
  }
}

export async function decodeImage(input: WorkerImage, signal?: AbortSignal, fetchOpts: ImageFetchOptions = {}): Promise<PixelImage> {
  if (typeof input === 'string') return decodeImage(await fetchImage(input, signal, fetchOpts), signal);
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) return fromImageData(input);
  if (isPixelsLike(input)) return fromImageData(input as ImageData);
  let bitmap: ImageBitmap;
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    if (input.size === 0) throw new WebVLMError('ImageDecodeFailed', 'The image blob is empty (0 bytes).');
    const head = sniffImageSize(new Uint8Array(await input.slice(0, SNIFF_BYTES).arrayBuffer()));
    if (head) checkImageSize(head.width, head.height, `The ${head.format.toUpperCase()} image`);
    if (typeof createImageBitmap === 'undefined') {
      throw new WebVLMError('ImageDecodeFailed', 'This environment cannot decode image files (no createImageBitmap, e.g. Node); pass decoded pixels { width, height, data } instead.');
    }
    try {
      bitmap = await createImageBitmap(input);
    } catch (cause) {
      throw new WebVLMError('ImageDecodeFailed', `The ${input.type || 'blob'} (${input.size} bytes) is not a decodable image.`, { cause });
    }
  } else if (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap) {
    bitmap = input;
  } else {
    throw new WebVLMError('InvalidImage', `Not an image (${input === null ? 'null' : typeof input}): pass a URL, Blob, ImageBitmap, ImageData or { width, height, data } with RGBA bytes.`);
  }
  const { width, height } = bitmap;
  try {
    checkImageSize(width, height);
  } catch (e) {
    bitmap.close();
    throw e;
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new WebVLMError('ImageDecodeFailed', 'No 2D canvas context is available to read the image pixels.');
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return fromImageData(ctx.getImageData(0, 0, width, height));
}

/**
 * `{ width, height, data }` with 4 bytes per pixel (RGBA): what an ImageData is, in places without one (Node, an
 * inline engine). Anything else that is not a Blob or ImageBitmap is not an image.
 */
function isPixelsLike(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || (typeof Blob !== 'undefined' && v instanceof Blob)) return false;
  if (typeof ImageBitmap !== 'undefined' && v instanceof ImageBitmap) return false;
  const o = v as { width?: unknown; height?: unknown; data?: unknown };
  if (!(typeof o.width === 'number' && typeof o.height === 'number' && (o.data instanceof Uint8ClampedArray || o.data instanceof Uint8Array))) {
    throw new WebVLMError('InvalidImage', 'Not an image: pass a URL, Blob, ImageBitmap, ImageData or { width, height, data } with RGBA bytes.');
  }
  checkImageSize(o.width, o.height);
  if (o.data.length !== o.width * o.height * 4) {
    throw new WebVLMError('InvalidImage', `The pixel data holds ${o.data.length} bytes; a ${o.width}×${o.height} RGBA image needs ${o.width * o.height * 4}.`);
  }
  return true;
}

function fromImageData(d: ImageData): PixelImage {
  checkImageSize(d.width, d.height);
  return { width: d.width, height: d.height, channels: 4, data: d.data };
}
