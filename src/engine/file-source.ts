/**
 * What the loaders read model files through: a `FileSource` opens a `FileHandle` (size, sha256 when known,
 * `stream()`, `range()`), whether the bytes come from the hub (./hub.ts), the browser cache (./cache.ts) or a
 * local folder (tests). Plus the small helpers that read a whole file or a JSON file from a handle.
 */
import { WebVLMError } from '../errors.ts';

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

/** A whole (small) file as bytes. */
export async function readAll(handle: FileHandle, opts: StreamOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = handle.stream(opts).getReader();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    parts.push(r.value);
    n += r.value.length;
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A JSON file, parsed; malformed JSON is a `CorruptCheckpoint`. */
export async function readJson<T = unknown>(handle: FileHandle, opts: StreamOptions = {}): Promise<T> {
  const bytes = await readAll(handle, opts);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as T;
  } catch (e) {
    throw new WebVLMError('CorruptCheckpoint', `${handle.name} is not valid JSON: ${(e as Error).message}`, { cause: e, details: { file: handle.name } });
  }
}
