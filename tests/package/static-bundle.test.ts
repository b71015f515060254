/**
 * No bundler, no Vite: the built `dist/*.js` (webvlm.js, webvlm.worker.js, the shared chunks) copied next to
 * examples/no-bundler's page, the tiny model copied into `models/` in hub layout (examples/self-hosted/copy-model.mjs),
 * all served by the example's dependency-free static server (examples/no-bundler/serve.mjs, node:http). The page
 * imports `./webvlm.js`; the bundle must start its worker from its own folder and need nothing but its sibling
 * files (comlink, tokenizers, jinja inlined). Then the same page with the bundle on a second origin (a CDN), through the same-origin bootstrap
 * worker the README shows. Both answer the tiny model's held-out question in Chromium. ~20 s on 2 cores.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium, ROOT } from '../harness/browser.ts';
import { consoleLine, openPage, run, stopwatch, TINY_CHECKPOINT, TINY_EXAMPLE, TINY_REPO, type PageRun } from './consumer-app.ts';
// @ts-expect-error plain JavaScript example files, no declarations
import { createStaticServer } from '../../examples/no-bundler/serve.mjs';
// @ts-expect-error plain JavaScript example files, no declarations
import { copyModel } from '../../examples/self-hosted/copy-model.mjs';

/** What a static host copies: every .js of dist/ (entry, worker, shared chunks) and their source maps. */
const bundle = () => readdirSync(join(ROOT, 'dist')).filter((f) => /\.js(\.map)?$/.test(f));
const MODEL_PATH = `/models/${TINY_REPO}/resolve/main/`;

let work: string;
let browser: Browser | undefined;
const servers: Server[] = [];
const site = { origin: '', log: [] as string[] };
const cdn = { origin: '', log: [] as string[] };

async function listen(root: string, cors: boolean, log: string[]): Promise<string> {
  const server: Server = createStaticServer({ root, cors, onRequest: (l: string) => log.push(l) });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return `http://127.0.0.1:${addr.port}`;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'webvlm-static-'));
  const { step } = stopwatch();
  await step('npm run build', () => run('npm', ['run', 'build'], { cwd: ROOT, maxBuffer: 1 << 26 }));
  // The site: the example page, the bundle beside it, the model in hub layout.
  const root = join(work, 'site');
  mkdirSync(root);
  for (const f of ['index.html', 'example.png']) copyFileSync(join(ROOT, 'examples/no-bundler', f), join(root, f));
  for (const f of bundle()) copyFileSync(join(ROOT, 'dist', f), join(root, f));
  copyModel({ from: TINY_CHECKPOINT, repo: TINY_REPO, out: join(root, 'models') });
  site.origin = await listen(root, false, site.log);
  // The "CDN": only the bundle, on another origin, with CORS headers.
  const cdnRoot = join(work, 'cdn');
  mkdirSync(cdnRoot);
  for (const f of bundle()) copyFileSync(join(ROOT, 'dist', f), join(cdnRoot, f));
  cdn.origin = await listen(cdnRoot, true, cdn.log);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  if (work && !process.env.WEBVLM_KEEP_CONSUMER) rmSync(work, { recursive: true, force: true });
});

/** Opens the page, waits for the model, asks the example question, returns the `done` line's data. */
async function ask(r: PageRun, url: string): Promise<{ text: string; finishReason: string; usage: { completionTokens: number } }> {
  await r.page.goto(url);
  await r.page.waitForSelector('#send:not([disabled])', { timeout: 3 * 60_000 }).catch(async (e) => {
    throw new Error(`the model did not load: ${await r.page.textContent('#status')}; errors: ${r.errors.join(' | ')} (${e})`);
  });
  const done = consoleLine(r, 'done');
  await r.page.click('#send');
  return JSON.parse((await done).text().slice('done '.length));
}

test('a static server with no bundler: the page imports ./webvlm.js, which starts ./webvlm.worker.js and answers', { timeout: 5 * 60_000 }, async (t) => {
  const { step } = stopwatch();
  for (const f of bundle().filter((f) => f.endsWith('.js'))) {
    assert.doesNotMatch(readFileSync(join(ROOT, 'dist', f), 'utf8'), /^\s*(import|export)\s[^;]*?from\s*["'](?!\.\/webvlm-)/m, `${f} imports only its sibling chunks (./webvlm-*.js)`);
  }
  const r = await openPage(browser!);
  const done = await step('load + answer (same origin)', () => ask(r, `${site.origin}/index.html`));
  t.diagnostic(`answer ${JSON.stringify(done.text)}, finish ${done.finishReason}; worker ${r.workers.join(', ')}`);
  assert.deepEqual(r.errors, [], 'no page errors');
  assert.deepEqual(r.workers, [`${site.origin}/webvlm.worker.js`], 'the worker came from the folder of webvlm.js');
  assert.equal(done.text, ` ${TINY_EXAMPLE.answer}`, 'the tiny model answers the held-out question; the text starts with the space after "Assistant:"');
  assert.equal(done.finishReason, 'stop');
  assert.equal(await r.page.textContent('#answer'), TINY_EXAMPLE.answer, 'the page shows it trimmed');

  // What a host serving models sees: HEAD + ranged GETs, 404 for the optional files the checkpoint lacks.
  const model = site.log.filter((l) => l.includes(MODEL_PATH)).map((l) => l.replace(MODEL_PATH, ''));
  t.diagnostic(`model requests: ${model.join('; ')}`);
  const fetched = new Set(model.filter((l) => / → 20[06]$/.test(l)).map((l) => l.split(' ')[1].split('?')[0]));
  assert.deepEqual([...fetched].sort(), ['chat_template.json', 'config.json', 'generation_config.json', 'model.safetensors', 'preprocessor_config.json', 'processor_config.json', 'tokenizer.json', 'tokenizer_config.json'],
    'the files webvlm reads are the ones the README lists under "Self-hosting the model files" (update both together)');
  for (const f of ['chat_template.jinja', 'model.safetensors.index.json']) assert.ok(model.includes(`HEAD ${f} → 404`), `the optional ${f} was asked for and is a 404`);
  assert.ok(model.some((l) => /^GET model\.safetensors \[bytes=\d+-\d+\] → 206$/.test(l)), 'the safetensors header was read with a Range request');
  assert.ok(site.log.some((l) => l.startsWith(`GET /models/api/models/${TINY_REPO}/revision/main`) && l.endsWith('→ 404')), 'the hub API is a 404 on a static host, and that is fine');
});

test('the bundle on another origin (a CDN): a same-origin bootstrap worker imports it, and the page answers', { timeout: 5 * 60_000 }, async (t) => {
  const { step } = stopwatch();
  const before = site.log.length;
  const r = await openPage(browser!);
  const done = await step('load + answer (bundle from a second origin)', () => ask(r, `${site.origin}/index.html?cdn=${encodeURIComponent(`${cdn.origin}/`)}`));
  t.diagnostic(`answer ${JSON.stringify(done.text)}; workers ${r.workers.join(', ')}; cdn: ${cdn.log.join('; ')}`);
  assert.deepEqual(r.errors, [], 'no page errors');
  assert.equal(done.text, ` ${TINY_EXAMPLE.answer}`);
  assert.ok(r.workers.length === 1 && r.workers[0].startsWith(`blob:${site.origin}/`), 'the worker is the same-origin bootstrap');
  assert.ok(cdn.log.includes('GET /webvlm.js → 200') && cdn.log.includes('GET /webvlm.worker.js → 200'), 'both files came from the CDN origin');
  assert.ok(!site.log.slice(before).some((l) => / \/webvlm(\.worker)?\.js /.test(l)), 'and not from the site');
});
