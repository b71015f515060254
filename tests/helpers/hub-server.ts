/**
 * A local stand-in for the Hugging Face hub (node:http on 127.0.0.1, a free port) serving directories in hub layout,
 * `/{repo}/resolve/{revision}/{file}`, plus `/api/models/{repo}/revision/{revision}` (siblings with sizes and LFS
 * sha256s, as `?blobs=true` returns them). Range requests, HEAD, Content-Length, ETag = x-linked-etag = sha256 and
 * x-linked-size on every file, 404 for what is missing. Per-file fault injection for download tests (the model-info
 * API is the file 'api': `setFault(repo, 'api', …)` takes `stallHeaders` and `hangAfter`).
 * Also, for self-hosting tests: plain folders (`folders`: `/{prefix}/{file}`, as a static file server serves them) and
 * an SPA fallback (`spaFallback`: unknown paths → 200 text/html index page, as Vite's dev server answers them).
 * Loopback only; `close()` ends every connection (including hung ones) and timer.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

export interface Fault {
  /** Answer the first `count` requests (HEAD and GET) with `status` (default 500). */
  fail?: { count: number; status?: number; retryAfter?: number };
  /** Throttle bodies to this many bytes per second. */
  bytesPerSecond?: number;
  /** Destroy the connection after this many body bytes, for the first `times` responses (Infinity: always). */
  dropAfter?: { bytes: number; times?: number };
  /** Stop sending (connection left open) after this many body bytes, for the first `times` responses. */
  hangAfter?: { bytes: number; times?: number };
  /** Wrong length: x-linked-size (and the API size) claim this instead of the real size. */
  declaredSize?: number;
  /** Flip this byte of the file in every response (ETag keeps the true file's sha256). */
  corruptByte?: number;
  /** Answer Range requests with 200 and the whole file. */
  ignoreRange?: boolean;
  /** Send no ETag / x-linked-etag (no hash to verify). */
  noHash?: boolean;
  /** Answer HEAD with 405 (the client must probe another way). */
  noHead?: boolean;
  /** Accept the request and never send the response headers, for the first `times` matching requests (default all). */
  stallHeaders?: { times?: number; method?: 'HEAD' | 'GET'; rangeOnly?: boolean };
}

export interface RequestRecord {
  method: string;
  repo: string;
  file: string;
  range: string | null;
  status: number;
  /** The client closed the connection before the response was complete (an aborted fetch). */
  aborted: boolean;
}

export interface HubServer {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  requests: RequestRecord[];
  setFault(repo: string, file: string, fault: Fault | null): void;
  /** Requests for one file (GET and HEAD). */
  requestsFor(repo: string, file: string): RequestRecord[];
  close(): Promise<void>;
}

export interface HubServerOptions {
  /** repo id → directory. */
  repos: Record<string, string>;
  /** Revisions served (default ['main']). */
  revisions?: string[];
  /** Serve the /api/models endpoint (default true). */
  api?: boolean;
  /** Answer cross-origin requests (CORS headers, preflight), for pages served from another origin. Default false. */
  cors?: boolean;
  /** URL prefix (e.g. 'models/tiny') → directory served as a plain folder, `/{prefix}/{file}`: Content-Length and a
   * content type by extension, no x-linked-* headers, no API (what nginx or `vite preview` give). */
  folders?: Record<string, string>;
  /** Answer every unknown path with 200 and an HTML index page (Vite's SPA fallback). `contentType` replaces the
   * text/html Content-Type (a server that lies about it). */
  spaFallback?: boolean | { contentType?: string };
}

/** The page `spaFallback` answers unknown paths with. */
export const SPA_INDEX = '<!DOCTYPE html>\n<html lang="en">\n  <head><meta charset="UTF-8" /><title>app</title></head>\n  <body><div id="app"></div><script type="module" src="/src/main.ts"></script></body>\n</html>\n';

const CONTENT_TYPES: Record<string, string> = { json: 'application/json', jinja: 'text/plain; charset=utf-8', txt: 'text/plain; charset=utf-8', html: 'text/html' };

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  record: (repo: string, file: string, status: number) => RequestRecord;
}

interface FileInfo {
  path: string;
  size: number;
  sha256: string;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort();
}

export async function startHubServer(opts: HubServerOptions): Promise<HubServer> {
  const revisions = opts.revisions ?? ['main'];
  const faults = new Map<string, Fault>();
  const used = new Map<string, { fail: number; drop: number; hang: number; stall: number }>();
  const info = new Map<string, Promise<FileInfo | null>>();
  const sockets = new Set<Socket>();
  const shutdown = new AbortController();
  const requests: RequestRecord[] = [];
  const key = (repo: string, file: string) => `${repo}\u0000${file}`;

  const fileInfo = (repo: string, file: string): Promise<FileInfo | null> => {
    const k = key(repo, file);
    let p = info.get(k);
    if (!p) {
      p = (async () => {
        const dir = opts.repos[repo] ?? opts.folders?.[repo];
        if (!dir || file.split('/').some((s) => s === '..' || s === '.' || s === '')) return null;
        const path = join(dir, file);
        const st = await stat(path).catch(() => null);
        if (!st?.isFile()) return null;
        const h = createHash('sha256');
        for await (const c of createReadStream(path)) h.update(c as Buffer);
        return { path, size: st.size, sha256: h.digest('hex') };
      })();
      info.set(k, p);
    }
    return p;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (shutdown.signal.aborted) return resolve();
      const onAbort = () => { clearTimeout(t); resolve(); };
      const t = setTimeout(() => { shutdown.signal.removeEventListener('abort', onAbort); resolve(); }, ms);
      shutdown.signal.addEventListener('abort', onAbort, { once: true });
    });

  const counter = (repo: string, file: string) => {
    let c = used.get(key(repo, file));
    if (!c) used.set(key(repo, file), (c = { fail: 0, drop: 0, hang: 0, stall: 0 }));
    return c;
  };

  /** Writes [start, end) of the file with the fault's pacing, corruption, drop and hang. */
  async function sendBody(res: ServerResponse, fi: FileInfo, start: number, end: number, fault: Fault, counts: { drop: number; hang: number }): Promise<void> {
    const dropAt = fault.dropAfter && counts.drop++ < (fault.dropAfter.times ?? 1) ? fault.dropAfter.bytes : Infinity;
    const hangAt = fault.hangAfter && counts.hang++ < (fault.hangAfter.times ?? 1) ? fault.hangAfter.bytes : Infinity;
    const piece = fault.bytesPerSecond ? Math.max(1, Math.floor(fault.bytesPerSecond / 20)) : 1 << 16;
    res.flushHeaders(); // headers go out now, so `hangAfter: { bytes: 0 }` is "headers, then silence"
    const fh = await open(fi.path, 'r');
    try {
      let sent = 0;
      const total = end - start;
      const buf = Buffer.alloc(piece);
      while (sent < total) {
        if (shutdown.signal.aborted || res.destroyed) return;
        if (sent >= dropAt) {
          res.socket?.destroy();
          return;
        }
        if (sent >= hangAt) return; // connection stays open, nothing more is sent
        const n = Math.min(piece, total - sent, dropAt - sent, hangAt - sent);
        const { bytesRead } = await fh.read(buf, 0, n, start + sent);
        const chunk = Buffer.from(buf.subarray(0, bytesRead));
        const c = fault.corruptByte;
        if (c !== undefined && c >= start + sent && c < start + sent + bytesRead) chunk[c - start - sent] ^= 0xff;
        await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
        sent += bytesRead;
        if (fault.bytesPerSecond) await sleep((bytesRead / fault.bytesPerSecond) * 1000);
      }
      if (sent >= dropAt) {
        res.socket?.destroy();
        return;
      }
      res.end();
    } finally {
      await fh.close();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (opts.cors) {
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-expose-headers', 'etag, x-linked-etag, x-linked-size, content-range, content-length, accept-ranges, retry-after, x-error-code');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { 'access-control-allow-methods': 'GET, HEAD', 'access-control-allow-headers': 'range, authorization', 'access-control-max-age': '600' }).end();
        return;
      }
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const record = (repo: string, file: string, status: number) => {
      const r: RequestRecord = { method: req.method ?? 'GET', repo, file, range: (req.headers.range as string | undefined) ?? null, status, aborted: false };
      requests.push(r);
      res.on('close', () => (r.aborted = !res.writableFinished));
      return r;
    };
    /** `stallHeaders`: true when this request is to be left unanswered (the connection stays open). */
    const stalls = (repo: string, file: string, fault: Fault) => {
      const s = fault.stallHeaders;
      if (!s || (s.method && s.method !== req.method) || (s.rangeOnly && !req.headers.range)) return false;
      const c = counter(repo, file);
      if (c.stall >= (s.times ?? Infinity)) return false;
      c.stall++;
      record(repo, file, 0);
      return true;
    };
    const notFound = (repo = '', file = '') => {
      if (opts.spaFallback) {
        // Vite's dev server: any unknown path is the app's index.html, 200.
        const ct = (typeof opts.spaFallback === 'object' && opts.spaFallback.contentType) || 'text/html';
        record(repo, file, 200);
        res.writeHead(200, { 'content-type': ct, 'content-length': String(Buffer.byteLength(SPA_INDEX)) }).end(req.method === 'HEAD' ? undefined : SPA_INDEX);
        return;
      }
      record(repo, file, 404);
      res.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    };

    // /api/models/{owner}/{name}/revision/{rev}
    if (parts[0] === 'api' && parts[1] === 'models') {
      const revAt = parts.indexOf('revision');
      const repo = parts.slice(2, revAt).join('/');
      const rev = parts[revAt + 1];
      if (opts.api === false || revAt < 0 || !opts.repos[repo] || !revisions.includes(rev)) return notFound(repo, 'api');
      const apiFault = faults.get(key(repo, 'api')) ?? {};
      if (stalls(repo, 'api', apiFault)) return;
      const siblings = [];
      for (const f of await listFiles(opts.repos[repo])) {
        const fi = await fileInfo(repo, f);
        if (!fi) continue;
        const fault = faults.get(key(repo, f)) ?? {};
        const size = fault.declaredSize ?? fi.size;
        siblings.push({ rfilename: f, size, blobId: fi.sha256.slice(0, 40), ...(fault.noHash ? {} : { lfs: { sha256: fi.sha256, size, pointerSize: 134 } }) });
      }
      record(repo, 'api', 200);
      const body = Buffer.from(JSON.stringify({ id: repo, sha: '0'.repeat(40), siblings }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
      const hang = apiFault.hangAfter && counter(repo, 'api').hang++ < (apiFault.hangAfter.times ?? 1) ? apiFault.hangAfter.bytes : Infinity;
      if (hang < body.length) res.write(body.subarray(0, hang)); // and nothing more: the connection stays open
      else res.end(body);
      return;
    }

    // Plain folders: /{prefix}/{file...}
    for (const [prefix, dir] of Object.entries(opts.folders ?? {})) {
      const pre = prefix.split('/');
      if (parts.length <= pre.length || pre.some((p, i) => parts[i] !== p)) continue;
      const file = parts.slice(pre.length).join('/');
      const fi = await fileInfo(prefix, file);
      if (!fi || !dir) return notFound(prefix, file);
      const ext = /\.([a-z0-9]+)$/i.exec(file)?.[1].toLowerCase() ?? '';
      const fault = faults.get(key(prefix, file)) ?? {};
      if (stalls(prefix, file, fault)) return;
      return serveFile({ req, res, record }, prefix, file, fi, fault, { 'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream', etag: `W/"${fi.size.toString(16)}-1"` });
    }

    // /{owner}/{name}/resolve/{rev}/{file...}
    const at = parts.indexOf('resolve');
    if (at < 1 || parts.length < at + 3) return notFound();
    const repo = parts.slice(0, at).join('/');
    const rev = parts[at + 1];
    const file = parts.slice(at + 2).join('/');
    if (!revisions.includes(rev)) return notFound(repo, file);
    const fi = await fileInfo(repo, file);
    if (!fi) return notFound(repo, file);

    const fault = faults.get(key(repo, file)) ?? {};
    if (stalls(repo, file, fault)) return;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'x-linked-size': String(fault.declaredSize ?? fi.size) };
    if (!fault.noHash) {
      headers.etag = `"${fi.sha256}"`;
      headers['x-linked-etag'] = `"${fi.sha256}"`;
    }
    return serveFile({ req, res, record }, repo, file, fi, fault, headers);
  }

  /** One file's response (faults, HEAD, Range) with `base` headers. */
  async function serveFile(ctx: Ctx, repo: string, file: string, fi: FileInfo, fault: Fault, base: Record<string, string>): Promise<void> {
    const { req, res, record } = ctx;
    const counts = counter(repo, file);
    if (fault.fail && counts.fail < fault.fail.count) {
      counts.fail++;
      const status = fault.fail.status ?? 500;
      record(repo, file, status);
      res.writeHead(status, { 'content-type': 'text/plain', ...(fault.fail.retryAfter !== undefined ? { 'retry-after': String(fault.fail.retryAfter) } : {}) }).end('injected failure');
      return;
    }
    if (req.method === 'HEAD' && fault.noHead) {
      record(repo, file, 405);
      res.writeHead(405).end();
      return;
    }

    const headers: Record<string, string> = { 'accept-ranges': 'bytes', ...base };
    let start = 0;
    let end = fi.size;
    let status = 200;
    const range = req.headers.range;
    if (range && !fault.ignoreRange) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (!m || (m[1] === '' && m[2] === '')) {
        record(repo, file, 416);
        res.writeHead(416, { 'content-range': `bytes */${fi.size}` }).end();
        return;
      }
      if (m[1] === '') {
        start = Math.max(0, fi.size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(fi.size, Number(m[2]) + 1);
      }
      if (start >= fi.size || start >= end) {
        record(repo, file, 416);
        res.writeHead(416, { 'content-range': `bytes */${fi.size}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${fi.size}`;
    }
    headers['content-length'] = String(end - start);
    record(repo, file, status);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await sendBody(res, fi, start, end, fault, counts);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
      else res.socket?.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('hub server: no address');

  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    setFault(repo, file, fault) {
      const k = key(repo, file);
      used.delete(k);
      if (fault) faults.set(k, fault);
      else faults.delete(k);
    },
    requestsFor(repo, file) {
      return requests.filter((r) => r.repo === repo && r.file === file);
    },
    async close() {
      shutdown.abort();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
