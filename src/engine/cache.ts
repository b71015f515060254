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
 * optional files. An HTML page served where a model file should be (a dev server's SPA fallback) is never stored as
 * the file: the source reports it absent (text/html) or the stream fails at its first bytes, checked here too.
 *
 * Integrity: bytes enter the cache only through the hub download, which checks size and sha256 (when the hub gives
 * one). While storing, every 4 MiB block's SHA-256 is recorded; every cached read re-hashes each block (WebCrypto,
 * native speed) *before* handing it out. A block that does not match, a missing or short file: the entry is evicted
 * and the rest of the file is downloaded again, transparently (the bytes already handed out were verified, so the
 * consumer never sees a corrupt byte). So cached files are verified on every read, the same way for every file.
 *
 * Storage backends, the index and `modelCache` live in ./cache-store.ts; this file is the FileSource side.
 *
 * Freshness: cache first. A cached `main` stays what it was when downloaded until `modelCache.delete(model)`;
 * pin a commit as `revision` for reproducible loads.
 */
import { WebVLMError } from '../errors.ts';
import { htmlPageError, looksLikeHtml, mayBeHtml, type FileHandle, type FileSource, type StreamOptions } from './file-source.ts';
import {
  OPFS_MIN_BYTES, BLOCK_BYTES, hasCacheApi, storage, opfsWritable, isQuota, quotaError, openWriter, readData, readMeta, writeMeta, evict, newDataId,
  type CacheKey, type Meta, type DataWriter,
} from './cache-store.ts';
import { digestHex } from './sha256.ts';

export { modelCache, type ModelCache, type CachedModelInfo, type CachedFileInfo } from './cache-store.ts';

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
      // A web page stored as the file (by a version without the HTML check) is evicted like a corrupt copy.
      const html = blob && blob.size === meta.size && !mayBeHtml(file) && looksLikeHtml(new Uint8Array(await blob.slice(0, 64).arrayBuffer().catch(() => new ArrayBuffer(0))), { partial: blob.size < 16 });
      if (blob && blob.size === meta.size && !html) return new CachedFile(this, meta, blob);
      await evict(meta);
      this.opts.onEvict?.(file, html ? 'the cached copy is an HTML page' : blob ? `the cached copy is ${blob.size} bytes, ${meta.size} expected` : 'the cached data is gone');
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
    blocks.push(await digestHex(whole));
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
          // Whatever the inner source let through: never keep a web page as a model file.
          if (size === 0 && !mayBeHtml(h.name) && looksLikeHtml(chunk, { partial: chunk.length < 16 })) throw htmlPageError(h.name);
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
          else if ((await digestHex(bytes)) !== meta.blocks[i]) why = `block ${i} (bytes ${at}–${end}) does not match its stored hash`;
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
