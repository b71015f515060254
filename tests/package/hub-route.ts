/**
 * Plays huggingface.co for a browser context: requests to `https://huggingface.co/{repo}/resolve/{rev}/{file}`
 * (HEAD, GET, `Range: bytes=a-b`) and the model API (`/api/models/{repo}/revision/{rev}?blobs=true`, with the
 * LFS sha256 the loader verifies) are answered from a local checkpoint folder, with the CORS headers the hub sends.
 * So code written for the real hub (the README quick start, no `baseUrl`) runs offline, unchanged.
 * Playwright routes the requests of the page's dedicated workers too (that is where webvlm downloads).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';

export interface HubRoute {
  /** Every request the route saw, as `METHOD path [range]` with the response status. */
  log: string[];
}

const HUB = 'https://huggingface.co';
const isLfs = (f: string) => f.endsWith('.safetensors');

export async function routeHub(context: BrowserContext, opts: { repo: string; dir: string }): Promise<HubRoute> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(opts.dir)) if (statSync(join(opts.dir, name)).isFile()) files.set(name, readFileSync(join(opts.dir, name)));
  const sha256 = new Map([...files].map(([n, b]) => [n, createHash('sha256').update(b).digest('hex')]));
  const sha1 = new Map([...files].map(([n, b]) => [n, createHash('sha1').update(b).digest('hex')]));
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'content-range, content-length, accept-ranges, etag, x-linked-size, x-linked-etag, x-repo-commit',
  };
  const log: string[] = [];

  await context.route(`${HUB}/**`, async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    const path = decodeURIComponent(url.pathname);
    const range = req.headers()['range'];
    const reply = (status: number, headers: Record<string, string>, body?: Buffer | string) => {
      log.push(`${req.method()} ${path}${range ? ` [${range}]` : ''} → ${status}`);
      return route.fulfill({ status, headers: { ...cors, ...headers }, body: req.method() === 'HEAD' ? '' : body });
    };
    if (req.method() === 'OPTIONS') return reply(204, { 'access-control-allow-headers': '*', 'access-control-allow-methods': 'GET, HEAD' });

    if (path === `/api/models/${opts.repo}/revision/main`) {
      const siblings = [...files].map(([rfilename, b]) =>
        isLfs(rfilename) ? { rfilename, size: b.length, lfs: { sha256: sha256.get(rfilename), size: b.length } } : { rfilename, size: b.length },
      );
      return reply(200, { 'content-type': 'application/json' }, JSON.stringify({ id: opts.repo, sha: 'local', siblings }));
    }
    const prefix = `/${opts.repo}/resolve/main/`;
    const body = path.startsWith(prefix) ? files.get(path.slice(prefix.length)) : undefined;
    if (!body) return reply(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' }, 'Entry not found');
    const file = path.slice(prefix.length);
    const headers: Record<string, string> = {
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      // As the hub: LFS files carry their sha256 in x-linked-etag, git files a sha1 ETag.
      etag: `"${isLfs(file) ? sha256.get(file) : sha1.get(file)}"`,
      ...(isLfs(file) ? { 'x-linked-size': String(body.length), 'x-linked-etag': `"${sha256.get(file)}"` } : {}),
    };
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
      if (start >= body.length || start > end) return reply(416, { 'content-range': `bytes */${body.length}` });
      return reply(206, { ...headers, 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': String(end - start + 1) }, body.subarray(start, end + 1));
    }
    return reply(200, { ...headers, 'content-length': String(body.length) }, body);
  });
  return { log };
}
