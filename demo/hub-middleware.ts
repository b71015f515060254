/**
 * Serves local model folders in Hugging Face hub layout: `/hub/{org}/{name}/resolve/{revision}/{file}`
 * (Range requests, Content-Length, ETag), so the demo loads its embedded model through the same
 * download path as a real hub model. Used by the Vite dev server (vite.config.ts).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Repo ids served locally → folder under `models/`. The first existing one is the demo's default. */
export const LOCAL_MODELS: Array<{ id: string; dir: string; label: string; random: boolean }> = [
  { id: 'webvlm/tiny-smolvlm', dir: 'tiny/checkpoint', label: 'tiny SmolVLM-layout model (trained here, embedded)', random: false },
  { id: 'webvlm/random-smolvlm-test', dir: 'generated/test', label: 'random-weight SmolVLM-layout test checkpoint', random: true },
  { id: 'webvlm/random-smolvlm-256m', dir: 'generated/256m', label: 'random-weight checkpoint at SmolVLM-256M shapes (benchmarks)', random: true },
];

export function availableLocalModels(modelsDir: string) {
  return LOCAL_MODELS.filter((m) => existsSync(join(modelsDir, m.dir, 'config.json')));
}

export function hubMiddleware(modelsDir: string) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname === '/hub/local-models.json') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(availableLocalModels(modelsDir)));
      return;
    }
    const m = /^\/hub\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!m) return next();
    const [, repo, , file] = m.map(decodeURIComponent);
    const entry = LOCAL_MODELS.find((x) => x.id === repo);
    const base = entry ? join(modelsDir, entry.dir) : null;
    const path = base ? normalize(join(base, file)) : null;
    if (!base || !path || !path.startsWith(base + sep) || !existsSync(path) || !statSync(path).isFile()) {
      res.statusCode = 404;
      res.end('Entry not found');
      return;
    }
    const size = statSync(path).size;
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', `"${size}-${Math.floor(statSync(path).mtimeMs)}"`);
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0, end = size - 1;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.statusCode = 416;
        res.setHeader('Content-Range', `bytes */${size}`);
        res.end();
        return;
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD') return void res.end();
    createReadStream(path, { start, end }).pipe(res);
  };
}
