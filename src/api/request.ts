/**
 * A chat request on the page side: checked synchronously (every wrong shape is an `InvalidArgument` naming the field,
 * before the request takes a place in the queue), then its images converted to what can cross into the worker, with
 * the abort signal checked between images.
 */
import { WebVLMError } from '../errors.ts';
import { validateSampling } from '../engine/sampler.ts';
import { IMAGE_DETAILS, validateGeneration } from '../engine/validate.ts';
import { checkImageSize, type WorkerImage } from '../worker/image-decode.ts';
import type { ChatMessage, ChatRequest, ContentPart, ImageInput } from '../types.ts';

const ROLES = ['system', 'user', 'assistant'];

function bad(where: string, message: string, hint?: string): never {
  throw new WebVLMError('InvalidArgument', `${where}: ${message}`, { hint, details: { where } });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The request's shape and options; throws `InvalidArgument` naming the first wrong field. */
export function validateChatRequest(req: ChatRequest): void {
  if (!isObject(req)) bad('chat()', 'the request must be an object { messages, ... }.');
  const { messages } = req;
  if (!Array.isArray(messages) || messages.length === 0) bad('messages', 'must be a non-empty array of { role, content }.');
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) bad(at, `must be an object { role, content }, got ${m === null ? 'null' : typeof m}.`);
    if (!ROLES.includes(m.role as string)) bad(`${at}.role`, `must be 'system', 'user' or 'assistant', got ${JSON.stringify(m.role)}.`);
    if (typeof m.content === 'string') return;
    if (!Array.isArray(m.content)) bad(`${at}.content`, 'must be a string or an array of content parts.');
    (m.content as unknown[]).forEach((p, j) => checkPart(p, `${at}.content[${j}]`));
  });
  validateSampling(req);
  validateGeneration(req);
  if (req.signal !== undefined && !(typeof AbortSignal !== 'undefined' && req.signal instanceof AbortSignal)) bad('signal', 'must be an AbortSignal.');
}

function checkPart(p: unknown, at: string): void {
  if (!isObject(p)) bad(at, `must be a content part object ({ type: 'text', text } or { type: 'image', image }), got ${p === null ? 'null' : typeof p}.`);
  const detail = p.type === 'image_url' && isObject(p.image_url) ? p.image_url.detail : p.detail;
  if (detail !== undefined && !(IMAGE_DETAILS as readonly unknown[]).includes(detail)) bad(`${at}.detail`, `must be 'low', 'auto' or 'high', got ${JSON.stringify(detail)}.`);
  switch (p.type) {
    case 'text':
      if (typeof p.text !== 'string') bad(`${at}.text`, 'must be a string.');
      return;
    case 'image':
      if (p.image === undefined || p.image === null) bad(`${at}.image`, `is ${p.image}; pass a URL, Blob, ImageBitmap, ImageData, <img> or canvas.`);
      return;
    case 'image_url':
      if (!isObject(p.image_url) || typeof p.image_url.url !== 'string' || !p.image_url.url) {
        bad(`${at}.image_url`, "must be { url: string } (OpenAI's shape: { type: 'image_url', image_url: { url } }).");
      }
      return;
    default:
      bad(`${at}.type`, `unknown content part type ${JSON.stringify(p.type)} (expected 'text', 'image' or 'image_url').`);
  }
}

/** Width and height of what can be measured on this thread, to refuse empty or huge images before copying them. */
function dimensions(img: ImageInput): { width: number; height: number } | null {
  if (typeof HTMLImageElement !== 'undefined' && img instanceof HTMLImageElement) return { width: img.naturalWidth, height: img.naturalHeight };
  if (typeof HTMLVideoElement !== 'undefined' && img instanceof HTMLVideoElement) return { width: img.videoWidth, height: img.videoHeight };
  const o = img as { width?: unknown; height?: unknown };
  return typeof o.width === 'number' && typeof o.height === 'number' ? { width: o.width, height: o.height } : null;
}

/** An image as the worker takes it: URLs resolved, elements and canvases turned into ImageBitmaps. */
async function toWorkerImage(img: ImageInput): Promise<WorkerImage> {
  if (typeof img === 'string') {
    try {
      return new URL(img, globalThis.location?.href).href;
    } catch (cause) {
      throw new WebVLMError('InvalidImage', `The image URL ${JSON.stringify(img.slice(0, 100))} is not a valid URL.`, { cause });
    }
  }
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
  if (typeof createImageBitmap === 'undefined') {
    // No DOM (Node, inline): an ImageData-like { width, height, data } goes to the decoder as it is.
    return img as unknown as WorkerImage;
  }
  try {
    return await createImageBitmap(img as ImageBitmapSource);
  } catch (cause) {
    throw new WebVLMError('ImageDecodeFailed', 'The image could not be read (unsupported type or tainted by CORS).', { cause });
  }
}

const aborted = (what: string) => new WebVLMError('Aborted', `The request was aborted ${what}.`);

/**
 * Splits messages into worker messages (image parts → placeholders) and the images, in order. Checks `signal`
 * before and after each image; on abort, bitmaps made here are closed and `Aborted` is thrown.
 */
export async function prepareMessages(messages: ChatMessage[], signal: AbortSignal): Promise<{ messages: ChatMessage[]; images: WorkerImage[] }> {
  const images: WorkerImage[] = [];
  const made: ImageBitmap[] = [];
  const out: ChatMessage[] = [];
  try {
    for (const m of messages) {
      if (typeof m.content === 'string') {
        out.push({ role: m.role, content: m.content });
        continue;
      }
      const parts: ContentPart[] = [];
      for (const p of m.content) {
        if (p.type === 'text') {
          parts.push(p);
          continue;
        }
        if (signal.aborted) throw aborted('while its images were prepared');
        const src = p.type === 'image' ? p.image : p.image_url.url;
        const img = await toWorkerImage(src);
        if (typeof ImageBitmap !== 'undefined' && img instanceof ImageBitmap && img !== src) made.push(img);
        images.push(img);
        if (signal.aborted) throw aborted('while its images were prepared');
        parts.push({ type: 'image', image: '', detail: p.type === 'image' ? p.detail : p.image_url.detail } as ContentPart);
      }
      out.push({ role: m.role, content: parts });
    }
    return { messages: out, images };
  } catch (e) {
    for (const b of made) b.close();
    throw e;
  }
}
