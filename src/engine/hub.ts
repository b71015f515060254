/**
 * Files of a Hugging Face model repository over HTTP: `{baseUrl}/{repo}/resolve/{revision}/{file}` — or of a plain
 * folder (`{folder}/{file}`: the model id is the folder's URL, or `layout: 'folder'`), see `HubSource`.
 *
 * `FileSource.open(file)` gives a `FileHandle` (size, sha256 when known, `stream()`, `range()`), so a Cache API
 * layer can wrap or replace the network without touching the loaders. The hub implementation:
 * - retries network errors, 408/429 and 5xx with exponential backoff (honouring Retry-After), and resumes a
 *   dropped or stalled connection with `Range: bytes=N-` (a server that ignores Range is handled by skipping);
 * - verifies the size (x-linked-size / Content-Length / the hub API) and the sha256 while streaming, with an
 *   incremental SHA-256 (`sha256.ts`): the last chunk is only delivered once the digest matched, so a consumer
 *   that reads to the end never accepts a corrupt file. The sha256 comes from the hub API (`?blobs=true`, the only
 *   source a browser can read after the LFS redirect), else `x-linked-etag`, else a strong 64-hex ETag of a
 *   response that was not redirected. Git (non-LFS) files have a sha1 ETag and are size-checked only.
 * - reports `{ phase: 'download', file, loaded, total }` progress (total 0 when unknown);
 * - puts deadlines on every request (its own AbortController, so a timed-out fetch really stops): response headers
 *   (`headersTimeoutMs`), each body chunk (`stallTimeoutMs`), and a short one for the optional model-info API
 *   (`apiTimeoutMs`, then loading goes on without it). Timeouts are retried like network errors;
 * - treats an HTML page where a model file was expected (a dev server's SPA fallback answering 200 with index.html
 *   for a missing file) as absent when the headers say text/html, and as `CorruptCheckpoint` when only the bytes do.
 */
import { WebVLMError } from '../errors.ts';
import { Sha256 } from './sha256.ts';
import type { FileHandle, FileSource, ProgressCallback, StreamOptions } from './file-source.ts';
import { htmlPageError, isHtmlType, looksLikeHtml, mayBeHtml } from './file-source.ts';
import { checkPath, encodePath, folderUrl, hubUrl, isFolderId } from './hub-url.ts';
import {
  abortError, childController, encoded, fetchWithDeadline, isRetryStatus, parseSize, readBody, retryAfter, Retryable, shaFromEtag, sleep, timeoutDetails, withDeadline,
} from './http-util.ts';

export { hubUrl };

/** Default deadlines (ms). */
export const HUB_DEFAULTS = Object.freeze({ headersTimeoutMs: 30_000, stallTimeoutMs: 30_000, apiTimeoutMs: 5_000 });
/** The model-info API's answer is a file list: far below this. */
const MAX_API_BYTES = 32 << 20;

export interface HubOptions {
  /** Branch, tag or commit. Default 'main'. */
  revision?: string;
  /** Default 'https://huggingface.co'. */
  baseUrl?: string;
  /** Extra request headers (e.g. `Authorization: Bearer hf_…` for gated models). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Default progress callback for streams of this source. */
  onProgress?: ProgressCallback;
  fetch?: typeof fetch;
  /** Attempts after the first failure in a row (a failure after new bytes arrived starts a new row). Default 5. */
  retries?: number;
  /** First backoff delay; doubles per failure in a row, with ±25 % jitter. Default 500 ms. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Response headers not in after this long: the attempt is abandoned and retried. Default 30 s. */
  headersTimeoutMs?: number;
  /** No body byte for this long (streamed downloads, range reads): the connection is treated as dropped, resumed or retried. Default 30 s. */
  stallTimeoutMs?: number;
  /** Deadline for the optional model-info API (headers, and each body chunk); past it loading goes on without it. Default 5 s. */
  apiTimeoutMs?: number;
  /** Verify sha256 when known. Default true. */
  verifyHash?: boolean;
  /** Ask `{baseUrl}/api/models/{repo}/revision/{rev}?blobs=true` for sizes and LFS sha256s. Default true (never for folders). */
  useApi?: boolean;
  /**
   * 'hub' (default): `{baseUrl}/{model}/resolve/{revision}/{file}`. 'folder': a plain directory of model folders,
   * `{baseUrl}/{model}/{file}` (baseUrl required; no model-info API). A model id that is itself a URL or a path
   * (`https://cdn.example.com/tiny/`, `/models/tiny/`, `./tiny/`) is always a folder: `{that}/{file}`.
   */
  layout?: 'hub' | 'folder';
}

interface FileMeta {
  size: number | null;
  /** True when `size` is authoritative (LFS size from the hub); false for a plain Content-Length. */
  sizeExact: boolean;
  sha256: string | null;
}

interface ApiSibling {
  rfilename?: unknown;
  size?: unknown;
  lfs?: { sha256?: unknown; size?: unknown } | null;
}

/**
 * A model's files over HTTP. `model` is a repo id ("owner/name", hub layout unless `layout: 'folder'`) or a folder
 * URL / path (`https://cdn.example.com/tiny/`, `/models/tiny/`: files are `{folder}{file}`, `baseUrl` unused; a
 * relative path resolves against `location`, so pass an absolute URL where that is not the page's).
 */
export class HubSource implements FileSource {
  readonly model: string;
  readonly revision: string;
  /** Hub layout: the hub's URL (no trailing '/'). Folder model id: the folder's absolute URL, ending in '/'. */
  readonly baseUrl: string;
  readonly layout: 'hub' | 'folder';
  /** The model id is the folder URL itself (`baseUrl`). */
  private readonly isFolderId: boolean;
  private readonly opts: HubOptions;
  private readonly fetchFn: typeof fetch;
  private apiMeta: Promise<Map<string, { size: number | null; sha256: string | null }> | null> | null = null;

  constructor(model: string, opts: HubOptions = {}) {
    this.isFolderId = isFolderId(model);
    if (this.isFolderId) {
      this.layout = 'folder';
      this.baseUrl = folderUrl(model);
    } else {
      checkPath('model id', model);
      this.layout = opts.layout ?? 'hub';
      if (this.layout === 'folder' && !opts.baseUrl) {
        throw new WebVLMError('InvalidArgument', `layout: 'folder' needs a baseUrl (the directory that holds ${model}/), or pass the folder's URL as the model id.`);
      }
      this.baseUrl = (opts.baseUrl ?? 'https://huggingface.co').replace(/\/+$/, '');
    }
    this.model = model;
    this.revision = opts.revision ?? 'main';
    this.opts = opts;
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  url(file: string): string {
    if (this.layout === 'hub') return hubUrl(this.model, file, { revision: this.revision, baseUrl: this.baseUrl });
    checkPath('file', file);
    return this.isFolderId ? this.baseUrl + encodePath(file) : `${this.baseUrl}/${encodePath(this.model)}/${encodePath(file)}`;
  }

  private get headersMs(): number {
    return this.opts.headersTimeoutMs ?? HUB_DEFAULTS.headersTimeoutMs;
  }

  private get stallMs(): number {
    return this.opts.stallTimeoutMs ?? HUB_DEFAULTS.stallTimeoutMs;
  }

  private get retries(): number {
    return this.opts.retries ?? 5;
  }

  private backoff(failures: number, hintMs?: number): number {
    const base = this.opts.retryDelayMs ?? 500;
    const max = this.opts.maxRetryDelayMs ?? 10_000;
    const exp = Math.min(max, base * 2 ** (failures - 1));
    const jittered = exp * (0.75 + Math.random() * 0.5);
    return Math.min(max, Math.max(jittered, hintMs ?? 0));
  }

  /** Sizes and LFS sha256s from the hub API, fetched once; null when the API is unavailable (mirrors, offline). */
  private api(signal?: AbortSignal): Promise<Map<string, { size: number | null; sha256: string | null }> | null> {
    if (this.opts.useApi === false || this.layout === 'folder') return Promise.resolve(null);
    this.apiMeta ??= (async () => {
      const sig = signal ?? this.opts.signal;
      const ms = this.opts.apiTimeoutMs ?? HUB_DEFAULTS.apiTimeoutMs;
      const what = `Asking the hub API about ${this.model}`;
      let close = () => {};
      try {
        const url = `${this.baseUrl}/api/models/${encodePath(this.model)}/revision/${encodeURIComponent(this.revision)}?blobs=true`;
        // Optional: a short deadline, no retries. A hub that does not answer costs `ms` once, not a stalled load.
        const r = await fetchWithDeadline(url, { headers: this.opts.headers }, { fetch: this.fetchFn, headersMs: ms, signal: sig, what });
        close = r.close;
        const { res } = r;
        if (!res.ok) return null;
        const body = await readBody(res, { conn: r.conn, idleMs: ms, signal: sig, what, maxBytes: MAX_API_BYTES });
        const json = JSON.parse(new TextDecoder().decode(body)) as { siblings?: ApiSibling[] };
        if (!Array.isArray(json.siblings)) return null;
        const map = new Map<string, { size: number | null; sha256: string | null }>();
        for (const s of json.siblings) {
          if (typeof s?.rfilename !== 'string') continue;
          const lfsSize = typeof s.lfs?.size === 'number' ? s.lfs.size : null;
          const size = lfsSize ?? (typeof s.size === 'number' ? s.size : null);
          const sha = typeof s.lfs?.sha256 === 'string' && /^[0-9a-f]{64}$/i.test(s.lfs.sha256) ? s.lfs.sha256.toLowerCase() : null;
          map.set(s.rfilename, { size, sha256: sha });
        }
        return map;
      } catch {
        // Metadata is an extra check; the download itself decides success. After an abort, ask again next time.
        if (sig?.aborted) this.apiMeta = null;
        return null;
      } finally {
        close();
      }
    })();
    return this.apiMeta;
  }

  /**
   * One request with retries, each attempt under the headers deadline. `read` gets the response for any
   * non-retryable status (the caller decides) and `body()`, the whole body under the idle deadline; what `read`
   * throws other than a `WebVLMError` (a dropped connection, a body timeout) is retried like a network error.
   * Throws `DownloadFailed` once retries run out (naming the file and the deadline that passed), `Aborted` on abort.
   */
  private async request<T>(file: string, init: RequestInit, signal: AbortSignal | undefined, read: (res: Response, body: () => Promise<Uint8Array>) => Promise<T>): Promise<T> {
    const url = this.url(file);
    const what = `Downloading ${file}`;
    let failures = 0;
    for (;;) {
      if (signal?.aborted) throw abortError(what, signal.reason);
      let hint: number | undefined;
      let last: unknown;
      let close = () => {};
      try {
        const r = await fetchWithDeadline(url, { ...init, headers: { ...this.opts.headers, ...(init.headers as Record<string, string>) } }, { fetch: this.fetchFn, headersMs: this.headersMs, signal, what });
        close = r.close;
        const res = r.res;
        if (!isRetryStatus(res.status)) return await read(res, () => readBody(res, { conn: r.conn, idleMs: this.stallMs, signal, what }));
        hint = retryAfter(res);
        last = new Retryable(`HTTP ${res.status}`);
        await res.body?.cancel().catch(() => {});
      } catch (e) {
        if (signal?.aborted) throw abortError(what, signal.reason);
        if (e instanceof WebVLMError) throw e;
        last = e;
      } finally {
        close();
      }
      failures++;
      if (failures > this.retries) {
        const why = last instanceof Error ? last.message : String(last);
        throw new WebVLMError('DownloadFailed', `${what} from ${url} failed after ${failures} attempts: ${why}.`, { details: { file, url, attempts: failures, ...timeoutDetails(last) } });
      }
      await sleep(this.backoff(failures, hint), signal, what);
    }
  }

  async open(file: string, opts: { signal?: AbortSignal } = {}): Promise<FileHandle | null> {
    const signal = opts.signal ?? this.opts.signal;
    const asIs = async (r: Response) => r;
    const [api, res0] = await Promise.all([this.api(signal), this.request(file, { method: 'HEAD' }, signal, asIs)]);
    if (signal?.aborted) throw abortError(`Downloading ${file}`, signal.reason); // (the API swallows its abort)
    let res = res0;
    if (res.status === 405 || res.status === 501) {
      // No HEAD: ask for the first byte instead and read the size from Content-Range.
      res = await this.request(file, { headers: { Range: 'bytes=0-0' } }, signal, async (r) => {
        await r.body?.cancel().catch(() => {});
        return r;
      });
    }
    if (res.status === 404 || res.status === 410) return null;
    if (res.status === 401 || res.status === 403) {
      throw new WebVLMError('ModelNotFound', `${this.model}@${this.revision}: access to ${file} denied (HTTP ${res.status}); the repository may be private or gated — pass an access token in headers.`, {
        details: { model: this.model, file, status: res.status },
      });
    }
    if (!res.ok) {
      throw new WebVLMError('DownloadFailed', `${this.url(file)}: unexpected HTTP ${res.status}.`, { details: { file, status: res.status } });
    }
    const h = res.headers;
    // A web page where a model file should be: a dev server's SPA fallback (index.html, 200, for any unknown path),
    // a login or error page. The file is not there, as with a 404.
    if (!mayBeHtml(file) && isHtmlType(h.get('content-type'))) return null;
    const fromApi = api?.get(file);
    let size = fromApi?.size ?? parseSize(h.get('x-linked-size'));
    let sizeExact = size !== null;
    if (size === null) {
      const cr = /\/(\d+)\s*$/.exec(h.get('content-range') ?? '');
      size = cr ? Number(cr[1]) : encoded(res) ? null : parseSize(h.get('content-length'));
    }
    if (res.status === 206 && size !== null) sizeExact = true;
    const sha256 = fromApi?.sha256 ?? shaFromEtag(h.get('x-linked-etag')) ?? (res.redirected ? null : shaFromEtag(h.get('etag')));
    return new HubFile(this, file, { size, sizeExact, sha256 });
  }

  /** @internal the streaming download behind `HubFile.stream`. */
  download(file: string, meta: FileMeta, opts: StreamOptions): ReadableStream<Uint8Array> {
    const onProgress = opts.onProgress ?? this.opts.onProgress;
    const { ctrl, release } = childController(opts.signal ?? this.opts.signal);
    const verify = this.opts.verifyHash !== false && meta.sha256 !== null;
    const hash = verify ? new Sha256() : null;
    const stallMs = this.stallMs;
    const sniffHtml = !mayBeHtml(file);
    let size = meta.size;
    let received = 0;
    let failures = 0;
    let receivedAtFailure = -1;
    let lastReported = -1;
    let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
    /** The current connection's controller: aborting it drops just this request. */
    let conn: { ctrl: AbortController; release: () => void } | null = null;
    let skip = 0;
    let firstEtag: string | null = null;
    const what = `Downloading ${file}`;

    const report = (force: boolean) => {
      if (!onProgress || (!force && received - lastReported < 1 << 20)) return;
      lastReported = received;
      onProgress({ phase: 'download', file, loaded: received, total: size ?? 0 });
    };
    const corrupt = (message: string, details: Record<string, unknown> = {}) =>
      new WebVLMError('CorruptCheckpoint', `${file}: ${message}`, { details: { file, url: this.url(file), ...details } });
    const closeConn = () => {
      const r = reader;
      reader = null;
      if (conn) {
        conn.ctrl.abort();
        conn.release();
        conn = null;
      }
      r?.cancel().catch(() => {});
    };
    /** Counts a failure; throws once there were too many in a row without progress. */
    const failed = async (why: string, hintMs?: number, cause?: unknown) => {
      closeConn();
      if (ctrl.signal.aborted) throw abortError(what, ctrl.signal.reason);
      if (received > receivedAtFailure) failures = 0;
      receivedAtFailure = received;
      failures++;
      if (failures > this.retries) {
        throw new WebVLMError('DownloadFailed', `${what} from ${this.url(file)} failed at byte ${received}${size !== null ? ` of ${size}` : ''} after ${failures} attempts: ${why}.`, {
          details: { file, url: this.url(file), received, size, attempts: failures, ...timeoutDetails(cause) },
        });
      }
      await sleep(this.backoff(failures, hintMs), ctrl.signal, what);
    };

    const connect = async () => {
      const headers: Record<string, string> = received > 0 ? { Range: `bytes=${received}-` } : {};
      let res: Response;
      try {
        const r = await fetchWithDeadline(this.url(file), { headers: { ...this.opts.headers, ...headers } }, { fetch: this.fetchFn, headersMs: this.headersMs, signal: ctrl.signal, what });
        conn = { ctrl: r.conn, release: r.close };
        res = r.res;
      } catch (e) {
        if (ctrl.signal.aborted) throw abortError(what, ctrl.signal.reason);
        return failed(e instanceof Error ? e.message : String(e), undefined, e);
      }
      if (isRetryStatus(res.status)) {
        await res.body?.cancel().catch(() => {});
        return failed(`HTTP ${res.status}`, retryAfter(res));
      }
      if (res.status === 416 && received > 0) {
        await res.body?.cancel().catch(() => {});
        throw corrupt(`the server has no bytes from ${received} on, but ${size} were expected`, { received, size });
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel().catch(() => {});
        throw new WebVLMError(res.status === 404 ? 'CorruptCheckpoint' : 'DownloadFailed', `${what}: HTTP ${res.status}${res.status === 404 ? ' (the file disappeared)' : ''}.`, {
          details: { file, status: res.status },
        });
      }
      // Without a hash, a changed ETag between the first response and a resumed one is the only sign that the
      // file changed under us (with a hash, the digest catches it; CDN ETags are not compared needlessly then).
      const etag = res.headers.get('etag');
      if (received === 0) firstEtag = etag;
      else if (!hash && firstEtag && etag && !etag.startsWith('W/') && etag !== firstEtag) {
        await res.body?.cancel().catch(() => {});
        throw corrupt(`the file changed on the server during the download (ETag ${firstEtag} → ${etag})`);
      }
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== received) {
          await res.body?.cancel().catch(() => {});
          throw corrupt(`resuming at byte ${received} got Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
        }
        skip = 0;
      } else {
        skip = received; // Range ignored: the whole file again; drop what we already have
        if (size === null && !encoded(res)) size = parseSize(res.headers.get('content-length'));
      }
      if (!res.body) throw corrupt('the response has no body');
      reader = res.body.getReader();
    };

    /** reader.read() that gives up (aborting the connection) after `stallMs` without data. */
    const readChunk = (r: ReadableStreamDefaultReader<Uint8Array>) => withDeadline(r.read(), stallMs, 'body', conn!.ctrl, ctrl.signal, what);

    /** Size and hash checks once every byte is in. */
    const finish = () => {
      if (size !== null && received !== size) throw corrupt(`got ${received} bytes, expected ${size}`, { received, size });
      if (hash && meta.sha256) {
        const got = hash.hex();
        if (got !== meta.sha256) throw corrupt(`sha256 ${got} does not match the expected ${meta.sha256}`, { sha256: got, expected: meta.sha256 });
      }
      report(true);
    };

    let done = false;
    return new ReadableStream<Uint8Array>({
      start: () => {
        report(true);
      },
      pull: async (controller) => {
        try {
          for (;;) {
            if (done) return;
            if (ctrl.signal.aborted) throw abortError(what, ctrl.signal.reason);
            if (!reader) {
              await connect();
              continue;
            }
            let r: ReadableStreamReadResult<Uint8Array>;
            try {
              r = await readChunk(reader);
            } catch (e) {
              if (ctrl.signal.aborted) throw abortError(what, ctrl.signal.reason);
              await failed(e instanceof Error ? e.message : String(e), undefined, e);
              continue;
            }
            if (r.done) {
              closeConn();
              if (size !== null && received < size) {
                // A clean end short of the size: a dropped connection as far as we can tell. Resume.
                await failed(`connection ended at byte ${received} of ${size}`);
                continue;
              }
              finish();
              done = true;
              release();
              controller.close();
              return;
            }
            let chunk = r.value;
            if (skip > 0) {
              const drop = Math.min(skip, chunk.length);
              skip -= drop;
              chunk = chunk.subarray(drop);
              if (!chunk.length) continue;
            }
            // The file's first bytes: an HTML page (SPA fallback, login page) under a non-HTML content type.
            if (received === 0 && sniffHtml && looksLikeHtml(chunk, { partial: chunk.length < 16 })) throw htmlPageError(file, this.url(file));
            if (size !== null && received + chunk.length > size) {
              if (meta.sizeExact) throw corrupt(`more than the expected ${size} bytes arrived`, { size });
              size = null; // only a Content-Length of a possibly compressed response: stop trusting it
            }
            hash?.update(chunk);
            received += chunk.length;
            if (size !== null && received === size) {
              // Last byte in: verify before handing it out, so no consumer finishes with unverified data.
              closeConn();
              finish();
              done = true;
              release();
              controller.enqueue(chunk);
              controller.close();
              return;
            }
            report(false);
            controller.enqueue(chunk);
            return;
          }
        } catch (e) {
          done = true;
          closeConn();
          release();
          throw e instanceof WebVLMError ? e : new WebVLMError('DownloadFailed', `${what} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
      },
      cancel: () => {
        done = true;
        closeConn();
        release();
        ctrl.abort(); // stops a pull still in flight (a backoff sleep, a reconnect)
      },
    });
  }

  /** @internal bytes [start, end) with retries. */
  async fetchRange(file: string, meta: FileMeta, start: number, end: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || (meta.size !== null && end > meta.size)) {
      throw new WebVLMError('InvalidArgument', `${file}: invalid range [${start}, ${end}) of a ${meta.size ?? 'unknown'}-byte file.`);
    }
    if (start === end) return new Uint8Array(0);
    return this.request(file, { headers: { Range: `bytes=${start}-${end - 1}` } }, signal ?? this.opts.signal, async (res, body) => {
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel().catch(() => {});
        throw new WebVLMError(res.status === 404 ? 'CorruptCheckpoint' : 'DownloadFailed', `${file}: range request got HTTP ${res.status}.`, { details: { file, status: res.status } });
      }
      const buf = await body();
      if (start === 0 && !mayBeHtml(file) && (isHtmlType(res.headers.get('content-type')) || looksLikeHtml(buf, { partial: true }))) throw htmlPageError(file, this.url(file));
      const bytes = res.status === 206 ? buf : buf.subarray(start, end);
      if (bytes.length !== end - start) {
        throw new WebVLMError('CorruptCheckpoint', `${file}: range [${start}, ${end}) returned ${bytes.length} bytes.`, { details: { file } });
      }
      return bytes;
    });
  }
}

class HubFile implements FileHandle {
  constructor(private readonly hub: HubSource, readonly name: string, private readonly meta: FileMeta) {}

  get size(): number | null {
    return this.meta.size;
  }

  get sha256(): string | null {
    return this.meta.sha256;
  }

  stream(opts: StreamOptions = {}): ReadableStream<Uint8Array> {
    return this.hub.download(this.name, this.meta, opts);
  }

  range(start: number, end: number, opts: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return this.hub.fetchRange(this.name, this.meta, start, end, opts.signal);
  }
}
