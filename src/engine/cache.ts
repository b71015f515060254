/**
 * The browser cache of model files: a `FileSource` wrapper (`CachedSource`) around the hub, keyed by
 * (base URL, repo, revision, file), so a second load reads nothing from the network and works offline.
 *
 * Where bytes live (chosen per file):
 * - **OPFS** (origin private file system) for files of 8 MiB and more (model.safetensors): written as a stream
 *   with `createWritable()` — never a whole response in memory — and read back as a disk-backed `File`.
 * - **Cache API** for the small files (JSON, tokenizer) and wherever OPFS writing is missing: one atomic `put`.
 * The index is a JSON entry per file in the Cache API (`meta`), written *after* the data is complete: data without
 * its meta is garbage that `delete`/`clear` sweeps, and a half-written file is never taken for a cached one.
 * Files the repo lacks (404) are remembered too (`absent`), so an offline load does not wait on network retries for
 * optional files.
 *
 * Integrity: bytes enter the cache only through the hub download, which checks size and sha256 (when the hub gives
 * one). While storing, every 4 MiB block's SHA-256 is recorded; every cached read re-hashes each block (WebCrypto,
 * native speed) *before* handing it out. A block that does not match, a missing or short file: the entry is evicted
 * and the rest of the file is downloaded again, transparently (the bytes already handed out were verified, so the
 * consumer never sees a corrupt byte). So cached files are verified on every read, the same way for every file.
 *
 * Freshness: cache first. A cached `main` stays what it was when downloaded until `modelCache.delete(model)`;
 * pin a commit as `revision` for reproducible loads.
 */
import { WebVLMError } from '../errors.ts';
import type { FileHandle, FileSource, StreamOptions } from './hub.ts';

const CACHE_NAME = 'webvlm-models-v1';
const OPFS_DIR = 'webvlm-models-v1';
const META_PREFIX = 'https://webvlm.cache/meta?';
const DATA_PREFIX = 'https://webvlm.cache/data/';
/** Files at least this big go to OPFS (when it can be written). */
export const OPFS_MIN_BYTES = 8 << 20;
/** Integrity block: each is hashed when stored and checked before it is handed out again. */
export const BLOCK_BYTES = 4 << 20;

export interface CacheKey {
  model: string;
  revision: string;
  baseUrl: string;
}

interface Meta extends CacheKey {
  v: 1;
  file: string;
  /** The repo has no such file. */
  absent?: true;
  size: number;
  /** The upstream sha256 the download was verified against, when the hub gave one. */
  sha256: string | null;
  blockSize: number;
  /** Hex SHA-256 of each block, in order. */
  blocks: string[];
  backend: 'cache' | 'opfs';
  dataId: string;
  storedAt: number;
}

export interface CachedFileInfo {
  file: string;
  size: number;
  sha256: string | null;
  backend: 'cache' | 'opfs';
  storedAt: number;
}

export interface CachedModelInfo extends CacheKey {
  files: CachedFileInfo[];
  /** Bytes of all cached files of this (model, revision, base URL). */
  bytes: number;
}

/** List, delete and clear what webvlm keeps in browser storage. Works on the main thread and in workers. */
export interface ModelCache {
  /** Cached models, one entry per (model, revision, base URL). */
  list(): Promise<CachedModelInfo[]>;
  /** Deletes a model's files (every revision unless one is given). Resolves to the bytes freed. */
  delete(model: string, opts?: { revision?: string }): Promise<number>;
  /** Deletes everything webvlm stored. */
  clear(): Promise<void>;
  /** Whether this context can cache at all (Cache API in a secure context). */
  readonly available: boolean;
}

const hasCacheApi = () => typeof caches !== 'undefined';
const storage = () => (typeof navigator !== 'undefined' ? navigator.storage : undefined);

function metaUrl(k: CacheKey, file: string): string {
  return META_PREFIX + new URLSearchParams({ b: k.baseUrl, m: k.model, r: k.revision, f: file }).toString();
}

async function hex(buf: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf as Uint8Array<ArrayBuffer>));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

async function opfsDir(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  const st = storage();
  if (!st?.getDirectory) return null;
  try {
    return await (await st.getDirectory()).getDirectoryHandle(OPFS_DIR, { create });
  } catch {
    return null;
  }
}

/** OPFS is used for big files only where a streaming writer exists (Chromium, Firefox, Safari 17+ workers…). */
async function opfsWritable(): Promise<boolean> {
  if (typeof FileSystemFileHandle === 'undefined' || !('createWritable' in FileSystemFileHandle.prototype)) return false;
  return (await opfsDir(true)) !== null;
}

const isQuota = (e: unknown) => typeof e === 'object' && e !== null && (e as { name?: string }).name === 'QuotaExceededError';
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The typed error for a full origin, with the numbers. */
export async function quotaError(file: string, needed: number, cause?: unknown): Promise<WebVLMError> {
  let usage = 0, quota = 0;
  try {
    const e = await storage()?.estimate();
    usage = e?.usage ?? 0;
    quota = e?.quota ?? 0;
  } catch {
    // estimate() is advisory; the message then lacks the numbers.
  }
  const free = Math.max(0, quota - usage);
  return new WebVLMError('QuotaExceeded',
    `Caching ${file} needs ${mb(needed)} of browser storage, but only ${mb(free)} of this site's ${mb(quota)} quota is free (${mb(usage)} used).`, {
      hint: `Free at least ${mb(Math.max(0, needed - free))}: delete cached models (modelCache.delete(model) or modelCache.clear()), ask for persistent storage (navigator.storage.persist()), or load with { cache: false }.`,
      details: { file, needed, free, usage, quota }, cause,
    });
}

/** Where one file's bytes go while it is stored. */
interface DataWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

async function openWriter(backend: 'cache' | 'opfs', dataId: string): Promise<DataWriter> {
  if (backend === 'opfs') {
    const dir = await opfsDir(true);
    if (!dir) throw new Error('OPFS unavailable');
    const fh = await dir.getFileHandle(dataId, { create: true });
    const w = await (fh as FileSystemFileHandle & { createWritable(): Promise<FileSystemWritableFileStream> }).createWritable();
    return {
      write: (c) => w.write(c as Uint8Array<ArrayBuffer>),
      close: () => w.close(),
      abort: async () => {
        await w.abort().catch(() => {});
        await dir.removeEntry(dataId).catch(() => {});
      },
    };
  }
  const cache = await caches.open(CACHE_NAME);
  // A streaming put: the response body is fed chunk by chunk; the put resolves once all of it is stored.
  const ts = new TransformStream<Uint8Array, Uint8Array>();
  const writer = ts.writable.getWriter();
  const put = cache.put(DATA_PREFIX + dataId, new Response(ts.readable as ReadableStream<Uint8Array<ArrayBuffer>>, { headers: { 'content-type': 'application/octet-stream' } }));
  let failed: unknown = null;
  put.catch((e) => (failed = e ?? new Error('cache put failed')));
  const race = <T>(p: Promise<T>) =>
    Promise.race([p, put.then(() => new Promise<T>(() => {}), (e) => Promise.reject(e))]);
  return {
    write: async (c) => {
      if (failed) throw failed;
      await race(writer.write(c));
    },
    close: async () => {
      if (failed) throw failed;
      await writer.close();
      await put;
    },
    abort: async () => {
      await writer.abort().catch(() => {});
      await put.catch(() => {});
      await cache.delete(DATA_PREFIX + dataId).catch(() => {});
    },
  };
}

async function readData(meta: Meta): Promise<Blob | null> {
  try {
    if (meta.backend === 'opfs') {
      const dir = await opfsDir(false);
      if (!dir) return null;
      return await (await dir.getFileHandle(meta.dataId)).getFile();
    }
    const res = await (await caches.open(CACHE_NAME)).match(DATA_PREFIX + meta.dataId);
    return res ? await res.blob() : null;
  } catch {
    return null;
  }
}

async function deleteData(meta: Pick<Meta, 'backend' | 'dataId'>): Promise<void> {
  if (meta.backend === 'opfs') {
    const dir = await opfsDir(false);
    await dir?.removeEntry(meta.dataId).catch(() => {});
  } else {
    await (await caches.open(CACHE_NAME)).delete(DATA_PREFIX + meta.dataId).catch(() => {});
  }
}

async function readMeta(k: CacheKey, file: string): Promise<Meta | null> {
  const res = await (await caches.open(CACHE_NAME)).match(metaUrl(k, file));
  if (!res) return null;
  try {
    const m = (await res.json()) as Meta;
    return m && m.v === 1 && m.file === file ? m : null;
  } catch {
    return null;
  }
}

async function writeMeta(m: Meta): Promise<void> {
  await (await caches.open(CACHE_NAME)).put(metaUrl(m, m.file), new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json' } }));
}

/** Drops one cached file (meta first, so a reader never finds meta without data). */
async function evict(m: Meta): Promise<void> {
  await (await caches.open(CACHE_NAME)).delete(metaUrl(m, m.file)).catch(() => {});
  if (!m.absent) await deleteData(m);
}

const newDataId = (file: string) => {
  const r = new Uint8Array(8);
  crypto.getRandomValues(r);
  return `${[...r].map((b) => b.toString(16).padStart(2, '0')).join('')}-${file.replace(/[^A-Za-z0-9._-]/g, '_')}`;
};

export interface CachedSourceOptions {
  /** Called when a cached file failed its check and was evicted (for logs and tests). */
  onEvict?: (file: string, why: string) => void;
}

/**
 * Serves files from the cache when present and intact, else from `inner` while storing them.
 * Where the Cache API is missing (insecure context), every call goes to `inner` untouched.
 */
export class CachedSource implements FileSource {
  private backendForBig: Promise<boolean> | null = null;

  constructor(readonly inner: FileSource, readonly key: CacheKey, private readonly opts: CachedSourceOptions = {}) {}

  async open(file: string, o: { signal?: AbortSignal } = {}): Promise<FileHandle | null> {
    if (!hasCacheApi()) return this.inner.open(file, o);
    const meta = await readMeta(this.key, file).catch(() => null);
    if (meta?.absent) return null;
    if (meta) {
      const blob = await readData(meta);
      if (blob && blob.size === meta.size) return new CachedFile(this, meta, blob);
      await evict(meta);
      this.opts.onEvict?.(file, blob ? `the cached copy is ${blob.size} bytes, ${meta.size} expected` : 'the cached data is gone');
    }
    const h = await this.inner.open(file, o);
    if (!h) {
      await writeMeta({ ...this.key, v: 1, file, absent: true, size: 0, sha256: null, blockSize: BLOCK_BYTES, blocks: [], backend: 'cache', dataId: '', storedAt: Date.now() }).catch(() => {});
      return null;
    }
    return new StoringFile(this, h);
  }

  /** @internal 'opfs' for big files where OPFS streams, else 'cache'. */
  async backendFor(size: number | null): Promise<'cache' | 'opfs'> {
    if (size === null || size < OPFS_MIN_BYTES) return 'cache';
    this.backendForBig ??= opfsWritable().catch(() => false);
    return (await this.backendForBig) ? 'opfs' : 'cache';
  }

  /** @internal */
  evicted(meta: Meta, why: string): Promise<void> {
    this.opts.onEvict?.(meta.file, why);
    return evict(meta);
  }
}

/**
 * Streams `h` (which verifies size and sha256 itself) to the consumer while writing it to the cache; the meta is
 * written only after the last byte is in and verified. `skip` leading bytes are stored but not handed out
 * (a corrupt cached file being repaired after `skip` good bytes were delivered).
 */
function storingStream(src: CachedSource, h: FileHandle, opts: StreamOptions, skip = 0): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let writer: DataWriter | null = null;
  let caching = true;
  let meta: Meta | null = null;
  /** The current integrity block, as the chunks that make it up so far. */
  let parts: Uint8Array[] = [];
  let partsLen = 0;
  const blocks: string[] = [];
  let size = 0;
  let toSkip = skip;

  const stopCaching = async () => {
    caching = false;
    const w = writer;
    writer = null;
    await w?.abort();
  };
  const flushBlock = async () => {
    if (!partsLen) return;
    const whole = new Uint8Array(partsLen);
    let o = 0;
    for (const p of parts) {
      whole.set(p, o);
      o += p.length;
    }
    blocks.push(await hex(whole));
    parts = [];
    partsLen = 0;
  };
  const store = async (chunk: Uint8Array) => {
    if (!caching || !writer) return;
    try {
      await writer.write(chunk);
    } catch (e) {
      await stopCaching();
      if (isQuota(e)) throw await quotaError(h.name, h.size ?? size, e);
      return; // another storage failure: keep loading, just uncached
    }
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(BLOCK_BYTES - partsLen, chunk.length - at);
      parts.push(chunk.subarray(at, at + n));
      partsLen += n;
      at += n;
      if (partsLen === BLOCK_BYTES) await flushBlock();
    }
  };

  return new ReadableStream<Uint8Array>({
    start: async () => {
      const backend = await src.backendFor(h.size);
      if (h.size !== null) {
        // Fail before downloading what cannot be stored.
        const est = await storage()?.estimate?.().catch(() => undefined);
        if (est?.quota !== undefined && est.usage !== undefined && h.size > est.quota - est.usage) throw await quotaError(h.name, h.size);
      }
      const dataId = newDataId(h.name);
      try {
        writer = await openWriter(backend, dataId);
      } catch (e) {
        if (isQuota(e)) throw await quotaError(h.name, h.size ?? 0, e);
        caching = false; // storage unusable here: load uncached
      }
      meta = { ...src.key, v: 1, file: h.name, size: 0, sha256: h.sha256, blockSize: BLOCK_BYTES, blocks, backend, dataId, storedAt: 0 };
      reader = h.stream(opts).getReader();
    },
    pull: async (controller) => {
      try {
        for (;;) {
          const r = await reader!.read();
          if (r.done) {
            if (caching && writer) {
              await flushBlock();
              try {
                await writer.close();
                writer = null;
                await writeMeta({ ...meta!, size, storedAt: Date.now() });
              } catch (e) {
                await stopCaching();
                if (isQuota(e)) throw await quotaError(h.name, size, e);
              }
            }
            controller.close();
            return;
          }
          const chunk = r.value;
          size += chunk.length;
          await store(chunk);
          if (toSkip >= chunk.length) {
            toSkip -= chunk.length;
            continue;
          }
          controller.enqueue(toSkip ? chunk.subarray(toSkip) : chunk);
          toSkip = 0;
          return;
        }
      } catch (e) {
        await stopCaching();
        reader?.cancel().catch(() => {});
        throw e;
      }
    },
    cancel: async (reason) => {
      await stopCaching();
      await reader?.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

/** A file the cache does not hold yet: reads go to the network and are stored on the way. */
class StoringFile implements FileHandle {
  constructor(private readonly src: CachedSource, private readonly h: FileHandle) {}
  get name() {
    return this.h.name;
  }
  get size() {
    return this.h.size;
  }
  get sha256() {
    return this.h.sha256;
  }
  stream(opts: StreamOptions = {}): ReadableStream<Uint8Array> {
    return storingStream(this.src, this.h, opts);
  }
  range(start: number, end: number, opts: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return this.h.range(start, end, opts);
  }
}

/** A cached file: read block by block, each block checked against its stored hash before it is handed out. */
class CachedFile implements FileHandle {
  constructor(private readonly src: CachedSource, private readonly meta: Meta, private readonly blob: Blob) {}
  get name() {
    return this.meta.file;
  }
  get size() {
    return this.meta.size;
  }
  get sha256() {
    return this.meta.sha256;
  }

  stream(opts: StreamOptions = {}): ReadableStream<Uint8Array> {
    const { meta, blob, src } = this;
    let at = 0;
    let i = 0;
    let repair: ReadableStreamDefaultReader<Uint8Array> | null = null;
    const report = () => opts.onProgress?.({ phase: 'download', file: meta.file, loaded: at, total: meta.size });
    const aborted = () => {
      if (opts.signal?.aborted) throw new WebVLMError('Aborted', `Reading ${meta.file} from the cache was aborted.`, { cause: opts.signal.reason });
    };
    return new ReadableStream<Uint8Array>({
      start: report,
      pull: async (controller) => {
        aborted();
        if (repair) {
          const r = await repair.read();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
          return;
        }
        if (at >= meta.size) {
          controller.close();
          return;
        }
        const end = Math.min(meta.size, at + meta.blockSize);
        let bytes: Uint8Array | null = null;
        let why = '';
        try {
          bytes = new Uint8Array(await blob.slice(at, end).arrayBuffer());
          if (bytes.length !== end - at) why = `block ${i} is ${bytes.length} bytes, ${end - at} expected`;
          else if ((await hex(bytes)) !== meta.blocks[i]) why = `block ${i} (bytes ${at}–${end}) does not match its stored hash`;
        } catch (e) {
          why = `reading the cached data failed: ${(e as Error)?.message ?? e}`;
        }
        if (why) {
          // Evict, then download the file again, storing it anew and handing out only what is still owed.
          await src.evicted(meta, why);
          let h: FileHandle | null;
          try {
            h = await src.inner.open(meta.file, { signal: opts.signal });
          } catch (e) {
            if (!(e instanceof WebVLMError) || e.code === 'Aborted') throw e;
            throw new WebVLMError(e.code, `The cached ${meta.file} was corrupt (${why}) and was evicted; downloading it again failed: ${e.message}`, { hint: e.hint, details: e.details, cause: e });
          }
          if (!h) throw new WebVLMError('CorruptCheckpoint', `The cached ${meta.file} was corrupt (${why}) and the server no longer has it.`, { details: { file: meta.file } });
          repair = storingStream(src, h, { signal: opts.signal }, at).getReader();
          const r = await repair.read();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
          return;
        }
        at = end;
        i++;
        report();
        controller.enqueue(bytes!);
      },
      cancel: async (reason) => {
        await repair?.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  async range(start: number, end: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > this.meta.size) {
      throw new WebVLMError('InvalidArgument', `${this.meta.file}: invalid range [${start}, ${end}) of a ${this.meta.size}-byte file.`);
    }
    return new Uint8Array(await this.blob.slice(start, end).arrayBuffer());
  }
}

async function allMeta(): Promise<Meta[]> {
  if (!hasCacheApi()) return [];
  const cache = await caches.open(CACHE_NAME);
  const out: Meta[] = [];
  for (const req of await cache.keys()) {
    if (!req.url.startsWith(META_PREFIX)) continue;
    try {
      const m = (await (await cache.match(req))?.json()) as Meta | undefined;
      if (m?.v === 1) out.push(m);
    } catch {
      // An unreadable index entry: drop it.
      await cache.delete(req);
    }
  }
  return out;
}

/** Data entries no meta points at (interrupted writes): removed by `delete` and `clear`. */
async function sweepOrphans(): Promise<void> {
  const live = new Set((await allMeta()).map((m) => m.dataId));
  const cache = await caches.open(CACHE_NAME);
  for (const req of await cache.keys()) {
    if (req.url.startsWith(DATA_PREFIX) && !live.has(req.url.slice(DATA_PREFIX.length))) await cache.delete(req);
  }
  const dir = await opfsDir(false);
  if (!dir) return;
  const names: string[] = [];
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
  for (const n of names) if (!live.has(n)) await dir.removeEntry(n).catch(() => {});
}

export const modelCache: ModelCache = {
  get available() {
    return hasCacheApi();
  },
  async list() {
    const groups = new Map<string, CachedModelInfo>();
    for (const m of await allMeta()) {
      if (m.absent) continue;
      const k = JSON.stringify([m.baseUrl, m.model, m.revision]);
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { model: m.model, revision: m.revision, baseUrl: m.baseUrl, files: [], bytes: 0 }));
      g.files.push({ file: m.file, size: m.size, sha256: m.sha256, backend: m.backend, storedAt: m.storedAt });
      g.bytes += m.size;
    }
    const out = [...groups.values()];
    for (const g of out) g.files.sort((a, b) => a.file.localeCompare(b.file));
    return out.sort((a, b) => a.model.localeCompare(b.model) || a.revision.localeCompare(b.revision));
  },
  async delete(model, opts = {}) {
    if (typeof model !== 'string' || !model) throw new WebVLMError('InvalidArgument', 'modelCache.delete(model): pass a model id like "HuggingFaceTB/SmolVLM-256M-Instruct".');
    let freed = 0;
    for (const m of await allMeta()) {
      if (m.model !== model || (opts.revision !== undefined && m.revision !== opts.revision)) continue;
      await evict(m);
      freed += m.absent ? 0 : m.size;
    }
    await sweepOrphans().catch(() => {});
    return freed;
  },
  async clear() {
    if (hasCacheApi()) await caches.delete(CACHE_NAME);
    const st = storage();
    if (st?.getDirectory) {
      try {
        await (await st.getDirectory()).removeEntry(OPFS_DIR, { recursive: true });
      } catch {
        // Nothing stored there yet.
      }
    }
  },
};
