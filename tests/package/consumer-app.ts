/**
 * Shared by the package tests (tests/package/*.test.ts): the steps a frontend developer takes with webvlm once it
 * is installed — a fresh Vite app whose main file is the README quick start (`quickstart.ts`, verbatim), type-checked
 * against the shipped declarations, `vite build`, `vite preview`, one chat in Chromium (SwiftShader) — and the
 * pieces the other routes reuse (build + pack, a PNG, timings, waiting for an answer in a page).
 *
 * Models: the committed tiny trained model (models/tiny/checkpoint, 3.9 MB) everywhere; for the quick start it plays
 * `HuggingFaceTB/SmolVLM-256M-Instruct` on huggingface.co through `routeHub`, so the snippet runs unchanged, offline.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { ROOT } from '../harness/browser.ts';
import { routeHub, type HubRoute } from './hub-route.ts';

export const run = promisify(execFile);
export const TINY_CHECKPOINT = join(ROOT, 'models/tiny/checkpoint');
export const TINY_REPO = 'webvlm/tiny-smolvlm';
export const QUICKSTART_MODEL = 'HuggingFaceTB/SmolVLM-256M-Instruct';
/** A held-out image of the tiny model with its question and answer (models/tiny/heldout/heldout.jsonl). */
export const TINY_EXAMPLE = { image: join(ROOT, 'models/tiny/heldout/006.png'), question: 'What color is the shape?', answer: 'blue' };
/** npm without noise and without the network where the local cache has the package. */
export const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

/** Named steps with their wall time, printed as they end and kept for the summary line. */
export function stopwatch() {
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[name] = Math.round(performance.now() - t0);
      console.log(`# ${name}: ${(timings[name] / 1000).toFixed(1)} s`);
    }
  };
  return { step, timings };
}

/** `npm run build` then `npm pack` of a checkout into `dest`; returns the tarball path and the files it ships. */
export async function buildAndPack(checkout: string, dest: string, step = stopwatch().step): Promise<{ tarball: string; files: string[] }> {
  await step('npm run build', () => run('npm', ['run', 'build'], { cwd: checkout, maxBuffer: 1 << 26 }));
  const packed = await step('npm pack', () => run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], { cwd: checkout, maxBuffer: 1 << 26 }));
  const info = JSON.parse(packed.stdout)[0] as { filename: string; files: Array<{ path: string }> };
  return { tarball: join(dest, info.filename), files: info.files.map((f) => f.path) };
}

/** A small RGB PNG (gradient + a square), written without dependencies. */
export function png(width: number, height: number): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const inSquare = x > width / 4 && x < width / 2 && y > height / 3 && y < (2 * height) / 3;
      raw.set(inSquare ? [230, 40, 40] : [(x * 255) / width, (y * 255) / height, 160], row + 1 + x * 3);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(td.length + 8);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc32(td), td.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const QUICKSTART_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8" /><title>webvlm consumer</title></head>
<body>
  <img src="/photo.png" alt="a photo" />
  <progress max="1" value="0"></progress>
  <button id="stop">Stop</button>
  <p id="answer"></p>
  <script type="module" src="./main.ts"></script>
</body>
</html>
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM', 'DOM.Iterable'],
    strict: true, noEmit: true, skipLibCheck: false, types: [],
  },
  include: ['main.ts'],
};

/** A fresh app (no dependencies yet): the README quick start as main.ts, an <img> to ask about, a Stop button. */
export function writeQuickstartApp(app: string): void {
  mkdirSync(join(app, 'public'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'webvlm-consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(join(app, 'index.html'), QUICKSTART_HTML);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  copyFileSync(join(ROOT, 'tests/package/quickstart.ts'), join(app, 'main.ts'));
  copyFileSync(TINY_EXAMPLE.image, join(app, 'public/photo.png'));
}

/**
 * The app type-checks against the installed package's declarations (strict, library files checked too), with its
 * own tsconfig.json, or with that config's module resolution switched (`NodeNext`: the `exports` conditions as Node
 * reads them).
 */
export async function typecheck(app: string, opts: { moduleResolution?: 'NodeNext' } = {}): Promise<void> {
  let project = app;
  if (opts.moduleResolution) {
    project = join(app, `tsconfig.${opts.moduleResolution.toLowerCase()}.json`);
    writeFileSync(project, JSON.stringify({ extends: './tsconfig.json', compilerOptions: { module: opts.moduleResolution, moduleResolution: opts.moduleResolution } }, null, 2));
  }
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project]).catch((e: { stdout?: string }) => {
    assert.fail(`the app does not type-check against the shipped declarations${opts.moduleResolution ? ` (moduleResolution ${opts.moduleResolution})` : ''}:\n${e.stdout}`);
  });
}

/**
 * `vite build` + `vite preview` with this repo's Vite (the consumer's bundler) and the app's own config file if it
 * has one; checks the build re-emitted the worker with shaders and dependencies inlined.
 */
export async function buildAndPreview(app: string, opts: { configFile?: string } = {}): Promise<{ origin: string; workerFile: string; close(): Promise<void> }> {
  const { build, preview } = await import('vite');
  const config = { root: app, configFile: opts.configFile ?? (false as const), logLevel: 'warn' as const, build: { outDir: join(app, 'dist') } };
  await build(config);
  const assets = readdirSync(join(app, 'dist/assets'));
  const workerFile = assets.find((f) => /^webvlm\.worker-[\w-]+\.js$/.test(f));
  assert.ok(workerFile, `the app's build emitted the worker (assets: ${assets.join(', ')})`);
  const workerCode = readFileSync(join(app, 'dist/assets', workerFile), 'utf8');
  assert.match(workerCode, /@compute/, 'the WGSL shaders are inlined in the worker');
  assert.match(workerCode, /Comlink/, 'comlink is bundled in the worker');
  assert.doesNotMatch(workerCode, /^\s*import\s.*from\s*["'][^./]/m, 'the worker has no bare imports left');
  const server = await preview({ ...config, preview: { host: '127.0.0.1', port: 0, strictPort: false } });
  const addr = server.httpServer.address();
  assert.ok(addr && typeof addr === 'object');
  return { origin: `http://127.0.0.1:${addr.port}`, workerFile: `/assets/${workerFile}`, close: () => server.close() };
}

export interface PageRun {
  page: Page;
  errors: string[];
  workers: string[];
  console: string[];
}

/** A new page that records page errors, worker URLs and console lines. */
export async function openPage(browser: Browser, hub?: { repo: string; dir: string }): Promise<PageRun & { hub?: HubRoute }> {
  const context = await browser.newContext();
  const route = hub ? await routeHub(context, hub) : undefined;
  const page = await context.newPage();
  const r: PageRun = { page, errors: [], workers: [], console: [] };
  page.on('pageerror', (e) => r.errors.push(e.message));
  page.on('worker', (w) => r.workers.push(w.url()));
  page.on('console', (m) => r.console.push(m.text()));
  return { ...r, hub: route };
}

/** Waits for the console message the page logs when its answer is done (or fails with what the page said). */
export async function consoleLine(r: PageRun, prefix: string, timeoutMs = 4 * 60_000): Promise<ConsoleMessage> {
  let timer: NodeJS.Timeout | undefined;
  const line = new Promise<ConsoleMessage>((resolve) => r.page.on('console', (m) => m.text().startsWith(prefix) && resolve(m)));
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no "${prefix}" console line within ${timeoutMs / 1000} s; page errors: ${r.errors.join(' | ')}; console: ${r.console.slice(-8).join(' | ')}`)), timeoutMs);
  });
  return Promise.race([line, timeout]).finally(() => clearTimeout(timer));
}

/** The `done` line of the quick start: `console.log('done', finishReason, usage)`. */
export async function quickstartAnswer(r: PageRun): Promise<{ answer: string; bar: number; finishReason: string; usage: { completionTokens: number; visualTokens: number; images: Array<{ frames: number }>; decodeTokensPerSecond: number; timeToFirstTokenMs: number } }> {
  const msg = await consoleLine(r, 'done');
  const [, finishReason, usage] = (await Promise.all(msg.args().map((a) => a.jsonValue()))) as [string, string, never];
  const bar = await r.page.evaluate(() => document.querySelector('progress')?.value ?? -1);
  return { answer: (await r.page.textContent('#answer')) ?? '', finishReason, usage, bar };
}

/** Asserts what every quick-start run must show. */
export function checkQuickstart(r: PageRun & { hub?: HubRoute }, res: Awaited<ReturnType<typeof quickstartAnswer>>): void {
  assert.deepEqual(r.errors, [], 'no page errors');
  assert.ok(r.hub?.log.some((l) => l.startsWith(`GET /${QUICKSTART_MODEL}/resolve/main/model.safetensors`)), 'the weights were downloaded from the (played) hub by the worker');
  assert.ok(['length', 'stop'].includes(res.finishReason), `finish reason ${res.finishReason}`);
  assert.ok(res.usage.completionTokens > 0, 'the model generated tokens');
  assert.equal(res.usage.images.length, 1);
  assert.equal(res.usage.images[0].frames, 1, "detail: 'low' is one frame");
  assert.ok(res.answer.length > 0, 'the streamed text reached the page');
  assert.equal(res.answer, res.answer.trimStart(), 'the page shows the answer without the leading space');
  assert.equal(res.bar, 1, 'the progress bar ends full');
}
