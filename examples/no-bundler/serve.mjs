#!/usr/bin/env node
/**
 * A plain static file server (Node's http, no dependencies) with what webvlm needs from a host: GET and HEAD,
 * `Range: bytes=a-b` → 206, Content-Type by extension, 404 for what is not there (never an index.html fallback),
 * no compression, and CORS headers with `--cors` (for serving the bundle or the models to pages on other origins).
 *
 *   node serve.mjs [folder] [--port 8080] [--cors]     then open http://127.0.0.1:8080/
 *
 * Any static server with these properties works as well (nginx, Caddy, a CDN, `vite preview`); see the README's
 * "Self-hosting the model files".
 */
import { createServer } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.jinja': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.css': 'text/css; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/**
 * @param {{ root: string, cors?: boolean, onRequest?: (line: string) => void }} opts
 * @returns {import('node:http').Server}
 */
export function createStaticServer({ root, cors = false, onRequest }) {
  const base = resolve(root);
  return createServer((req, res) => {
    const done = (status) => onRequest?.(`${req.method} ${req.url}${req.headers.range ? ` [${req.headers.range}]` : ''} → ${status}`);
    if (cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Headers', 'Range, Authorization');
      res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
      return done(204);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return done(405);
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return done(400);
    }
    let file = join(base, path);
    if (file !== base && !file.startsWith(base + sep)) file = ''; // no ../ out of the folder
    if (file && existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : 'Not found');
      return done(404);
    }
    const { size, mtimeMs } = statSync(file);
    const headers = {
      'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      ETag: `"${size.toString(16)}-${Math.floor(mtimeMs).toString(16)}"`,
      'Cache-Control': 'no-cache', // revalidate with the ETag; webvlm keeps models in its own browser cache
    };
    let start = 0, end = size - 1, status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && (range[1] || range[2])) {
      if (range[1]) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      } else start = Math.max(0, size - Number(range[2])); // bytes=-N: the last N bytes
      if (start >= size || start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return done(416);
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = String(end - start + 1);
    res.writeHead(status, headers);
    done(status);
    if (req.method === 'HEAD' || size === 0) return void res.end();
    createReadStream(file, { start, end }).pipe(res);
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const flag = (name) => args.includes(name);
  const value = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
  const root = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--port') ?? fileURLToPath(new URL('.', import.meta.url));
  const port = Number(value('--port', '8080'));
  createStaticServer({ root, cors: flag('--cors') }).listen(port, '127.0.0.1', () => {
    console.log(`serving ${resolve(root)} at http://127.0.0.1:${port}/${flag('--cors') ? ' (with CORS headers)' : ''}`);
  });
}
