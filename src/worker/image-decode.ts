/** Turns what the API accepts as an image into pixels, in the worker (no DOM; OffscreenCanvas + createImageBitmap). */
import { WebVLMError } from '../errors.ts';
import type { PixelImage } from '../engine/resample.ts';

/** What crosses into the worker: already-decoded pixels, a bitmap, a blob, or a URL to fetch. */
export type WorkerImage = ImageData | ImageBitmap | Blob | string;

/** Largest decoded area accepted (a 20000×20000 image would need 1.6 GB of RGBA). */
export const MAX_IMAGE_PIXELS = 64 * 1024 * 1024;

export async function decodeImage(input: WorkerImage, signal?: AbortSignal): Promise<PixelImage> {
  if (typeof input === 'string') {
    let res: Response;
    try {
      res = await fetch(input, { signal });
    } catch (cause) {
      throw new WebVLMError('ImageDecodeFailed', `Could not fetch the image at ${input.slice(0, 100)}.`, { cause });
    }
    if (!res.ok) throw new WebVLMError('ImageDecodeFailed', `Fetching the image at ${input.slice(0, 100)} failed: HTTP ${res.status}.`);
    return decodeImage(await res.blob(), signal);
  }
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) return fromImageData(input);
  let bitmap: ImageBitmap;
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    try {
      bitmap = await createImageBitmap(input);
    } catch (cause) {
      throw new WebVLMError('ImageDecodeFailed', `The ${input.type || 'blob'} (${input.size} bytes) is not a decodable image.`, { cause });
    }
  } else {
    bitmap = input as ImageBitmap;
  }
  const { width, height } = bitmap;
  if (!(width > 0 && height > 0)) throw new WebVLMError('InvalidImage', `The image is ${width}×${height}; it needs a non-zero width and height.`);
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new WebVLMError('InvalidImage', `The image is ${width}×${height} (${((width * height) / 1e6).toFixed(0)} MP); at most ${MAX_IMAGE_PIXELS / 1024 / 1024} MP are accepted.`, { hint: 'Downscale the image before passing it.' });
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new WebVLMError('ImageDecodeFailed', 'No 2D canvas context is available to read the image pixels.');
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return fromImageData(ctx.getImageData(0, 0, width, height));
}

function fromImageData(d: ImageData): PixelImage {
  if (!(d.width > 0 && d.height > 0)) throw new WebVLMError('InvalidImage', `The image is ${d.width}×${d.height}; it needs a non-zero width and height.`);
  return { width: d.width, height: d.height, channels: 4, data: d.data };
}
