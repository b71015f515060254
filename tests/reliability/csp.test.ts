/**
 * Content Security Policy: the built library (vite build of src/index.ts, as `npm run build` makes it, into a temp
 * dir so dist/ is left alone) contains no `eval` / `new Function` (ours or a dependency's: comlink,
 * @huggingface/jinja, @huggingface/tokenizers), and a page served with `script-src 'self'; worker-src 'self'`
 * (no 'unsafe-eval', no blob: workers) loads the random test checkpoint with the built bundle and chats.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { build } from 'vite';
import { launchChromium } from '../harness/browser.ts';
import { hubMiddleware } from '../../demo/hub-middleware.ts';
import { ensureTestModel } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CSP = "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'";
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

let out: string;
let server: Server;
let origin: string;
let browser: Browser | null = null;

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js')).map((f) => join(dir, f));
}

before(async () => {
  await ensureTestModel();
  out = mkdtempSync(join(tmpdir(), 'webvlm-build-'));
  await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), logLevel: 'error', build: { outDir: out, emptyOutDir: true } });
  const hub = hubMiddleware(join(ROOT, 'models'));
  server = createServer((req, res) => {
    res.setHeader('Content-Security-Policy', CSP);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hub(req, res, () => {
      const base = path.startsWith('/tests/reliability/csp-page.') ? ROOT : out;
      const file = normalize(join(base, path));
      if (!file.startsWith(base.endsWith(sep) ? base : base + sep) || !existsSync(file) || !statSync(file).isFile()) {
        res.statusCode = 404;
        res.end('not found');
        return;
      }
      res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
      createReadStream(file).pipe(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  origin = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

after(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r));
  if (out) rmSync(out, { recursive: true, force: true });
});

test('the built bundle has no eval / new Function / string timers', () => {
  const files = jsFiles(out);
  assert.ok(files.some((f) => f.endsWith('webvlm.js')), `built: ${files.join(', ')}`);
  assert.ok(files.length >= 2, 'the library and its worker chunk');
  const patterns: Array<[string, RegExp]> = [
    ['new Function(', /\bnew\s+Function\s*\(/],
    ['Function("…")', /(?<![\w$.])Function\s*\(\s*["'`]/],
    ['eval(', /(?<![\w$.])eval\s*\(/],
    ['setTimeout("…")', /\bset(Timeout|Interval)\s*\(\s*["'`]/],
  ];
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    for (const [what, re] of patterns) {
      const m = re.exec(src);
      assert.equal(m, null, `${f.slice(out.length)} contains ${what}: …${m ? src.slice(Math.max(0, m.index - 80), m.index + 80) : ''}…`);
    }
  }
});

test(`a page under "${CSP}" loads the test checkpoint with the built bundle and chats`, { timeout: 300_000 }, async (t) => {
  browser = await launchChromium();
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/404/.test(m.text())) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/tests/reliability/csp-page.html`);
  const r = await page.evaluate(() => (window as unknown as { __csp: Promise<Record<string, unknown>> }).__csp);
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.evalBlocked, true, 'the policy is in force (new Function is refused on the page)');
  assert.equal(r.ok, true, String(r.error));
  assert.equal(r.completionTokens, 2);
  assert.deepEqual(r.violations, []);
  assert.deepEqual(errors.filter((e) => /Content Security Policy|unsafe-eval|EvalError/i.test(e)), []);
});
