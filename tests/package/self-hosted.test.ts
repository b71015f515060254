/**
 * examples/self-hosted as a user runs it: a copy of the example, webvlm installed from the packed tarball, the tiny
 * model copied into `public/models/` in hub layout by the example's copy-model.mjs, type-checked, `vite build` and
 * `vite preview` with the example's own vite.config.js (`appType: 'mpa'`). Then what the README's "Self-hosting the
 * model files" promises, asked of that server over HTTP (HEAD, Range → 206, content types, 404 for a missing file,
 * and Vite's default SPA fallback answering it with index.html instead), and one answer in Chromium.
 * ~25 s on 2 cores.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium, ROOT } from '../harness/browser.ts';
import { buildAndPack, buildAndPreview, consoleLine, NPM_QUIET, openPage, run, stopwatch, TINY_CHECKPOINT, TINY_EXAMPLE, TINY_REPO, typecheck } from './consumer-app.ts';

const EXAMPLE = join(ROOT, 'examples/self-hosted');

let work: string;
let browser: Browser | undefined;
const closers: Array<() => Promise<void>> = [];
before(() => {
  work = mkdtempSync(join(tmpdir(), 'webvlm-self-hosted-'));
});
after(async () => {
  await browser?.close();
  for (const close of closers) await close();
  if (work && !process.env.WEBVLM_KEEP_CONSUMER) rmSync(work, { recursive: true, force: true });
});

test('examples/self-hosted: the tiny model from public/ in hub layout, vite build + vite preview, answers in Chromium', { timeout: 8 * 60_000 }, async (t) => {
  const { step, timings } = stopwatch();
  const { tarball } = await buildAndPack(ROOT, work, step);

  // The example as a user has it: its files, the model copied in, webvlm installed (Vite is this repo's).
  const app = join(work, 'self-hosted');
  cpSync(EXAMPLE, app, { recursive: true, filter: (src) => !/[\\/](node_modules|dist|models)$/.test(src) });
  const copied = await run(process.execPath, ['copy-model.mjs', TINY_CHECKPOINT, TINY_REPO], { cwd: app });
  t.diagnostic(copied.stdout.trim());
  await step('npm install <tarball> (example)', () => run('npm', ['install', ...NPM_QUIET, '--omit=dev', tarball], { cwd: app, maxBuffer: 1 << 26 }));
  await step('tsc (example)', () => typecheck(app));
  const server = await step('vite build + preview (example config)', () => buildAndPreview(app, { configFile: join(app, 'vite.config.js') }));
  closers.push(server.close);
  const base = `${server.origin}/models/${TINY_REPO}/resolve/main/`;
  assert.deepEqual(readFileSync(join(app, 'dist/models', TINY_REPO, 'resolve/main/config.json')), readFileSync(join(TINY_CHECKPOINT, 'config.json')), 'vite build copied public/models into the site');

  // What the host answers (the README's list).
  const head = await fetch(`${base}config.json`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.match(head.headers.get('content-type') ?? '', /^application\/json/, 'JSON files are served as JSON');
  const ranged = await fetch(`${base}model.safetensors`, { headers: { Range: 'bytes=0-7' } });
  assert.equal(ranged.status, 206, 'Range requests are answered with 206');
  assert.equal((await ranged.arrayBuffer()).byteLength, 8);
  assert.match(ranged.headers.get('content-range') ?? '', /^bytes 0-7\/\d+$/);
  const weightsType = ranged.headers.get('content-type') ?? '';
  assert.doesNotMatch(weightsType, /html/, `model.safetensors is not served as HTML (${weightsType})`);
  for (const missing of ['chat_template.jinja', 'model.safetensors.index.json']) {
    const res = await fetch(`${base}${missing}`, { headers: { Accept: '*/*' } });
    assert.equal(res.status, 404, `a missing optional file (${missing}) is a 404 with appType 'mpa'`);
  }
  // Why the example sets appType: 'mpa': with Vite's default ('spa') the same request gets index.html and a 200.
  const { preview } = await import('vite');
  const spa = await preview({ root: app, configFile: false, logLevel: 'silent', build: { outDir: join(app, 'dist') }, preview: { host: '127.0.0.1', port: 0, strictPort: false } });
  closers.push(() => spa.close());
  const spaAddr = spa.httpServer.address();
  assert.ok(spaAddr && typeof spaAddr === 'object');
  const fallback = await fetch(`http://127.0.0.1:${spaAddr.port}/models/${TINY_REPO}/resolve/main/chat_template.jinja`, { headers: { Accept: '*/*' } });
  const fallbackBody = await fallback.text();
  t.diagnostic(`appType 'spa' (Vite's default) answers a missing chat_template.jinja with HTTP ${fallback.status} ${fallback.headers.get('content-type')} (${fallbackBody.length} bytes${/<html/i.test(fallbackBody) ? ', index.html' : ''})`);
  assert.ok(fallback.status === 200 && /<html/i.test(fallbackBody), "without appType: 'mpa' a missing file would be index.html (the README's warning holds)");

  // The page answers.
  browser = await launchChromium();
  const r = await openPage(browser);
  const models: string[] = [];
  r.page.context().on('response', (res) => res.url().includes('/models/') && models.push(`${res.request().method()} ${res.url().replace(base, '')} → ${res.status()}`));
  const done = await step('load + answer in Chromium', async () => {
    await r.page.goto(`${server.origin}/`);
    await r.page.waitForSelector('#send:not([disabled])', { timeout: 3 * 60_000 }).catch(async (e) => {
      throw new Error(`the model did not load: ${await r.page.textContent('#status')}; errors: ${r.errors.join(' | ')} (${e})`);
    });
    const line = consoleLine(r, 'done');
    await r.page.click('#send');
    return JSON.parse((await line).text().slice('done '.length)) as { text: string; finishReason: string };
  });
  t.diagnostic(`answer ${JSON.stringify(done.text)} (${done.finishReason}); model requests: ${models.join('; ')}`);
  assert.deepEqual(r.errors, [], 'no page errors');
  assert.equal(done.text, ` ${TINY_EXAMPLE.answer}`, 'the tiny model answers the example question');
  assert.equal(done.finishReason, 'stop');
  assert.equal(await r.page.textContent('#answer'), TINY_EXAMPLE.answer);
  assert.ok(r.workers.some((u) => u === `${server.origin}${server.workerFile}`), 'the worker came from the example build');
  console.log(`# timings (ms): ${JSON.stringify(timings)}`);
});
