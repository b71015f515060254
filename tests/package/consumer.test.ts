/**
 * The package as a frontend developer gets it: `npm run build`, `npm pack`, install the tarball into a fresh
 * Vite app whose main file is the README quick start (`quickstart.ts`, verbatim), type-check it against the
 * shipped declarations, `vite build` it, serve the build, and run that one chat in Chromium (SwiftShader) —
 * with huggingface.co played by the random test checkpoint (`hub-route.ts`), so the snippet runs unchanged.
 * This proves the worker, its dependencies and the shaders survive the consumer's bundler.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';
import type { Browser, ConsoleMessage } from 'playwright-core';
import { launchChromium, ROOT } from '../harness/browser.ts';
import { routeHub } from './hub-route.ts';

const run = promisify(execFile);
const MODEL_DIR = join(ROOT, 'models/generated/test');
const QUICKSTART_MODEL = 'HuggingFaceTB/SmolVLM-256M-Instruct';

/** A small RGB PNG (gradient + a square), written without dependencies. */
function png(width: number, height: number): Buffer {
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

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8" /><title>webvlm consumer</title></head>
<body>
  <img src="/photo.png" alt="a photo" />
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

let work: string;
let browser: Browser | undefined;
let closePreview: (() => Promise<void>) | undefined;
before(async () => {
  await import('../../models/ensure-demo-model.ts'); // the random test checkpoint, once
  work = mkdtempSync(join(tmpdir(), 'webvlm-consumer-'));
});
after(async () => {
  await browser?.close();
  await closePreview?.();
  if (work && !process.env.WEBVLM_KEEP_CONSUMER) rmSync(work, { recursive: true, force: true });
});

test('npm pack → fresh Vite app running the README quick start → one chat in Chromium', { timeout: 15 * 60_000 }, async (t) => {
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

  // 1. Build and pack exactly what `npm publish` would ship.
  await step('npm run build', () => run('npm', ['run', 'build'], { cwd: ROOT, maxBuffer: 1 << 26 }));
  const packed = await step('npm pack', () => run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT, maxBuffer: 1 << 26 }));
  const info = JSON.parse(packed.stdout)[0] as { filename: string; files: Array<{ path: string }> };
  const shipped = info.files.map((f) => f.path);
  t.diagnostic(`tarball ${info.filename}: ${shipped.length} files`);
  for (const must of ['package.json', 'README.md', 'dist/webvlm.js', 'dist/webvlm.worker.js', 'dist/types/index.d.ts', 'dist/types/api/types.d.ts']) {
    assert.ok(shipped.includes(must), `the tarball ships ${must}`);
  }
  assert.deepEqual(shipped.filter((p) => /^(src|tests|models|shaders|demo|bench)\//.test(p)), [], 'no sources, tests or models in the tarball');

  // 2. A fresh app: the quick start as its main file, an <img> to ask about.
  const app = join(work, 'app');
  mkdirSync(join(app, 'public'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'webvlm-consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(join(app, 'index.html'), INDEX_HTML);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  copyFileSync(join(ROOT, 'tests/package/quickstart.ts'), join(app, 'main.ts'));
  writeFileSync(join(app, 'public/photo.png'), png(48, 40));
  await step('npm install <tarball>', () =>
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', join(work, info.filename)], { cwd: app, maxBuffer: 1 << 26 }));
  assert.ok(existsSync(join(app, 'node_modules/webvlm/dist/webvlm.js')));

  // 3. The quick start type-checks against the shipped declarations (strict, library files checked too).
  await step('tsc (consumer)', () =>
    run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app]).catch((e: { stdout?: string }) => {
      assert.fail(`the quick start does not type-check against the shipped declarations:\n${e.stdout}`);
    }));

  // 4. `vite build` with this repo's Vite (the consumer's bundler), default config.
  const { build, preview } = await import('vite');
  await step('vite build (consumer)', () => build({ root: app, configFile: false, logLevel: 'warn', build: { outDir: join(app, 'dist') } }));
  const assets = readdirSync(join(app, 'dist/assets'));
  const workerFile = assets.find((f) => /^webvlm\.worker-[\w-]+\.js$/.test(f));
  assert.ok(workerFile, `the consumer build emitted the worker (assets: ${assets.join(', ')})`);
  const workerCode = readFileSync(join(app, 'dist/assets', workerFile), 'utf8');
  assert.match(workerCode, /@compute/, 'the WGSL shaders are inlined in the worker');
  assert.match(workerCode, /Comlink/, 'comlink is bundled in the worker');
  assert.doesNotMatch(workerCode, /^\s*import\s.*from\s*["'][^./]/m, 'the worker has no bare imports left');
  t.diagnostic(`consumer worker: ${workerFile} (${(workerCode.length / 1024).toFixed(0)} KiB)`);

  // 5. Serve the build; huggingface.co answers from the random test checkpoint.
  const server = await preview({ root: app, configFile: false, logLevel: 'warn', build: { outDir: join(app, 'dist') }, preview: { host: '127.0.0.1', port: 0, strictPort: false } });
  closePreview = () => server.close();
  const addr = server.httpServer.address();
  assert.ok(addr && typeof addr === 'object');
  const origin = `http://127.0.0.1:${addr.port}`;

  browser = await launchChromium();
  const context = await browser.newContext();
  const hub = await routeHub(context, { repo: QUICKSTART_MODEL, dir: MODEL_DIR });
  const page = await context.newPage();
  const errors: string[] = [];
  const workers: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('worker', (w) => workers.push(w.url()));
  const done = new Promise<ConsoleMessage>((resolve) => page.on('console', (m) => m.text().startsWith('done') && resolve(m)));

  const msg = await step('chat in Chromium (load + answer)', async () => {
    await page.goto(`${origin}/`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within 8 min; page errors: ${errors.join(' | ')}; hub: ${hub.log.slice(-5).join(' | ')}`)), 8 * 60_000);
    });
    return Promise.race([done, timeout]).finally(() => clearTimeout(timer));
  });
  const [, finishReason, usage] = (await Promise.all(msg.args().map((a) => a.jsonValue()))) as [string, string, { completionTokens: number; visualTokens: number; images: Array<{ frames: number }>; decodeTokensPerSecond: number; timeToFirstTokenMs: number }];
  const answer = (await page.textContent('#answer')) ?? '';
  t.diagnostic(`finish ${finishReason}, ${usage.completionTokens} tokens, ${usage.visualTokens} visual tokens, TTFT ${usage.timeToFirstTokenMs.toFixed(0)} ms, ${usage.decodeTokensPerSecond.toFixed(1)} tok/s; answer ${JSON.stringify(answer.slice(0, 80))}`);
  t.diagnostic(`hub requests: ${hub.log.length} (${hub.log.filter((l) => l.includes('model.safetensors')).join('; ')})`);

  assert.deepEqual(errors, [], 'no page errors');
  assert.ok(workers.some((u) => u === `${origin}/assets/${workerFile}`), `the worker came from the consumer's build (${workers.join(', ')})`);
  assert.ok(hub.log.some((l) => l.startsWith('GET /HuggingFaceTB/SmolVLM-256M-Instruct/resolve/main/model.safetensors')), 'the weights were downloaded from the (played) hub by the worker');
  assert.ok(['length', 'stop'].includes(finishReason), `finish reason ${finishReason}`);
  assert.ok(usage.completionTokens > 0, 'the model generated tokens');
  assert.equal(usage.images.length, 1);
  assert.equal(usage.images[0].frames, 1, "detail: 'low' is one frame");
  assert.ok(answer.length > 0, 'the streamed text reached the page');
  console.log(`# timings (ms): ${JSON.stringify(timings)}`);
});
