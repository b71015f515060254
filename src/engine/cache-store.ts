/**
 * Where the model cache keeps bytes and its index (see ./cache.ts for the design): Cache API and OPFS backends,
 * the per-file index entries (`meta`), quota errors, and `modelCache` (list / delete / clear).
 */
import { WebVLMError } from '../errors.ts';

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

export interface Meta extends CacheKey {
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

export const hasCacheApi = () => typeof caches !== 'undefined';
export const storage = () => (typeof navigator !== 'undefined' ? navigator.storage : undefined);

function metaUrl(k: CacheKey, file: string): string {
  return META_PREFIX + new URLSearchParams({ b: k.baseUrl, m: k.model, r: k.revision, f: file }).toString();
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
export async function opfsWritable(): Promise<boolean> {
  if (typeof FileSystemFileHandle === 'undefined' || !('createWritable' in FileSystemFileHandle.prototype)) return false;
  return (await opfsDir(true)) !== null;
}

export const isQuota = (e: unknown) => typeof e === 'object' && e !== null && (e as { name?: string }).name === 'QuotaExceededError';
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
export interface DataWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export async function openWriter(backend: 'cache' | 'opfs', dataId: string): Promise<DataWriter> {
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

export async function readData(meta: Meta): Promise<Blob | null> {
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

export async function readMeta(k: CacheKey, file: string): Promise<Meta | null> {
  const res = await (await caches.open(CACHE_NAME)).match(metaUrl(k, file));
  if (!res) return null;
  try {
    const m = (await res.json()) as Meta;
    return m && m.v === 1 && m.file === file ? m : null;
  } catch {
    return null;
  }
}

export async function writeMeta(m: Meta): Promise<void> {
  await (await caches.open(CACHE_NAME)).put(metaUrl(m, m.file), new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json' } }));
}

/** Drops one cached file (meta first, so a reader never finds meta without data). */
export async function evict(m: Meta): Promise<void> {
  await (await caches.open(CACHE_NAME)).delete(metaUrl(m, m.file)).catch(() => {});
  if (!m.absent) await deleteData(m);
}

export const newDataId = (file: string) => {
  const r = new Uint8Array(8);
  crypto.getRandomValues(r);
  return `${[...r].map((b) => b.toString(16).padStart(2, '0')).join('')}-${file.replace(/[^A-Za-z0-9._-]/g, '_')}`;
};

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
