/**
 * What the loaders read model files through: a `FileSource` opens a `FileHandle` (size, sha256 when known,
 * `stream()`, `range()`), whether the bytes come from the hub (./hub.ts), the browser cache (./cache.ts) or a
 * local folder (tests). Plus the small helpers that read a whole file, a JSON or a text file from a handle, with a
 * byte cap, and the HTML-page check (a dev server's SPA fallback answering for a missing file).
 */
import { WebVLMError } from '../errors.ts';
import { concat } from './http-util.ts';

export type LoadPhase = 'download' | 'parse' | 'quantize' | 'upload';

/** Structured load progress. `total` is 0 when unknown. Assignable to the public `LoadProgress`. */
export interface LoadProgressEvent {
  phase: LoadPhase;
  file: string;
  loaded: number;
  total: number;
}
export type ProgressCallback = (e: LoadProgressEvent) => void;

export interface StreamOptions {
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
}

/** One file of a model, wherever it comes from (network, cache, memory). */
export interface FileHandle {
  readonly name: string;
  /** Bytes, when the source knows them up front. */
  readonly size: number | null;
  /** Lower-case hex sha256 when the source knows it (then `stream()` verifies it). */
  readonly sha256: string | null;
  /** The whole file; each call starts a new read. Errors with `WebVLMError`s. */
  stream(opts?: StreamOptions): ReadableStream<Uint8Array>;
  /** Bytes [start, end) (not hash-checked: only whole files are). */
  range(start: number, end: number, opts?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

export interface FileSource {
  /** Describes one file, or null when it does not exist. */
  open(file: string, opts?: { signal?: AbortSignal }): Promise<FileHandle | null>;
}

/** Default caps for files read whole: real ones are far smaller (SmolVLM's tokenizer.json is 3.5 MB, the largest
 * tokenizer.json of current VLMs ~35 MB; a chat template is a few KB). Past these, it is not the file we expect. */
export const MAX_JSON_BYTES = 64 << 20;
export const MAX_TEXT_BYTES = 16 << 20;

export interface ReadAllOptions extends StreamOptions {
  /** Refuse files bigger than this (known size: before reading; else once the stream passes it). Default `MAX_JSON_BYTES`. */
  maxBytes?: number;
}

/** What `readAll`'s cap error calls the file ("a JSON file"); and whether an HTML page is refused. */
interface Kind {
  noun: string;
  rejectHtml: boolean;
}

const mib = (n: number) => `${+(n / (1 << 20)).toFixed(1)} MiB`;

function tooBig(h: FileHandle, kind: Kind, maxBytes: number, size: number | null): WebVLMError {
  const what = size !== null ? `${h.name} is ${size} bytes (${mib(size)}), more than the ${maxBytes}-byte (${mib(maxBytes)}) limit for ${kind.noun}` : `${h.name} is more than ${maxBytes} bytes (the limit for ${kind.noun})`;
  return new WebVLMError('CorruptCheckpoint', `${what}; it is not the file the model needs.`, { details: { file: h.name, ...(size !== null ? { size } : {}), maxBytes } });
}

/** A file name whose content may legitimately be an HTML page. */
export const mayBeHtml = (file: string) => /\.x?html?$/i.test(file);

/** A Content-Type that says HTML. */
export const isHtmlType = (contentType: string | null) => contentType !== null && /^\s*(text\/html|application\/xhtml\+xml)\s*(;|$)/i.test(contentType);

/**
 * Whether bytes start an HTML document (`<!doctype html` or `<html`, after a BOM and whitespace): what a dev server's
 * SPA fallback (Vite's default) or a login / error page sends where a model file was asked for. No model file we
 * read (JSON, Jinja, safetensors, text) can start that way.
 */
export function looksLikeHtml(b: Uint8Array, opts: { partial?: boolean } = {}): boolean {
  let i = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  const head = String.fromCharCode(...b.subarray(i, i + 15)).toLowerCase();
  if (/^<!doctype\s+html[\s>]/.test(head) || /^<html[\s>]/.test(head)) return true;
  // `partial`: the bytes may end inside the marker (a short range read, e.g. a safetensors header length).
  return !!opts.partial && i + head.length === b.length && head.length >= 5 && ('<!doctype html'.startsWith(head) || head === '<html');
}

/** The `CorruptCheckpoint` for an HTML page served where the file was expected. */
export function htmlPageError(file: string, url?: string): WebVLMError {
  return new WebVLMError('CorruptCheckpoint', `${file}: got an HTML page instead of the file${url ? ` (${url})` : ''}.`, {
    hint: "The server answered with a web page, not the model file: a dev server's SPA fallback (Vite serves index.html for unknown paths), a login or an error page. Check that the file exists at that URL, or serve the model folder from a static server without an HTML fallback.",
    details: { file, ...(url ? { url } : {}) },
  });
}

/** The leading bytes `looksLikeHtml` needs (whitespace before them included). */
const SNIFF_BYTES = 64;

async function collect(handle: FileHandle, opts: ReadAllOptions, kind: Kind, defaultMax: number): Promise<Uint8Array> {
  const { maxBytes = defaultMax, ...streamOpts } = opts;
  if (handle.size !== null && handle.size > maxBytes) throw tooBig(handle, kind, maxBytes, handle.size);
  const parts: Uint8Array[] = [];
  let n = 0;
  let sniffed = !kind.rejectHtml;
  const sniff = () => {
    sniffed = true;
    if (looksLikeHtml(parts.length === 1 ? parts[0] : concat(parts, n).subarray(0, SNIFF_BYTES))) throw htmlPageError(handle.name);
  };
  const reader = handle.stream(streamOpts).getReader();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      parts.push(r.value);
      n += r.value.length;
      if (n > maxBytes) throw tooBig(handle, kind, maxBytes, null);
      if (!sniffed && n >= SNIFF_BYTES) sniff();
    }
    if (!sniffed) sniff();
  } catch (e) {
    reader.cancel().catch(() => {}); // stop the download (or cache read) at once
    throw e;
  }
  return concat(parts, n);
}

/** A whole (small) file as bytes, at most `maxBytes` (default `MAX_JSON_BYTES`); over it: `CorruptCheckpoint`. */
export function readAll(handle: FileHandle, opts: ReadAllOptions = {}): Promise<Uint8Array> {
  return collect(handle, opts, { noun: 'a file read whole', rejectHtml: false }, MAX_JSON_BYTES);
}

/**
 * A UTF-8 text file (e.g. chat_template.jinja), at most `maxBytes` (default `MAX_TEXT_BYTES`). Too big, or an HTML
 * page instead of the file: `CorruptCheckpoint`.
 */
export async function readText(handle: FileHandle, opts: ReadAllOptions = {}): Promise<string> {
  const bytes = await collect(handle, opts, { noun: 'a text file', rejectHtml: true }, MAX_TEXT_BYTES);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new WebVLMError('CorruptCheckpoint', `${handle.name} is not UTF-8 text.`, { cause: e, details: { file: handle.name } });
  }
}

/** A JSON file, parsed, at most `maxBytes` (default `MAX_JSON_BYTES`); malformed JSON, too big or an HTML page: `CorruptCheckpoint`. */
export async function readJson<T = unknown>(handle: FileHandle, opts: ReadAllOptions = {}): Promise<T> {
  const bytes = await collect(handle, opts, { noun: 'a JSON file', rejectHtml: true }, MAX_JSON_BYTES);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as T;
  } catch (e) {
    throw new WebVLMError('CorruptCheckpoint', `${handle.name} is not valid JSON: ${(e as Error).message}`, { cause: e, details: { file: handle.name } });
  }
}
