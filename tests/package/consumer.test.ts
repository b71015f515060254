/**
 * The package as the registry would serve it: `npm run build`, `npm pack` (what `npm publish` uploads: the file list
 * and the `exports` targets are checked), install the tarball into a fresh Vite app whose main file is the README
 * quick start (`quickstart.ts`, verbatim; the README's block is compared with it), type-check it against the
 * shipped declarations, `vite build` it, serve the build, and run that chat in Chromium (SwiftShader) — with
 * huggingface.co played by the tiny model (`hub-route.ts`), so the snippet runs unchanged.
 * This proves the worker, its dependencies and the shaders survive the consumer's bundler.
 * The git-URL route is git-install.test.ts; no bundler at all is static-bundle.test.ts. 17-60 s on 2 cores
 * (most of it `npm run build` and tsc; more when the machine is busy).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium, ROOT } from '../harness/browser.ts';
import {
  buildAndPack, buildAndPreview, checkQuickstart, NPM_QUIET, openPage, QUICKSTART_MODEL, quickstartAnswer, run, stopwatch, TINY_CHECKPOINT, typecheck,
  writeQuickstartApp,
} from './consumer-app.ts';

/**
 * Everything the tarball may hold: the entry, the worker and the shared chunks (`webvlm-<name>.js`, e.g. the inline
 * host loaded on demand) with their source maps, the public declarations, the docs.
 */
const SHIPPED = /^(package\.json|README\.md|LICENSE|dist\/webvlm(\.worker|-[\w-]+)?\.js(\.map)?|dist\/types\/.+\.d\.ts)$/;

let work: string;
let browser: Browser | undefined;
let closePreview: (() => Promise<void>) | undefined;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'webvlm-consumer-'));
});
after(async () => {
  await browser?.close();
  await closePreview?.();
  if (work && !process.env.WEBVLM_KEEP_CONSUMER) rmSync(work, { recursive: true, force: true });
});

test('the README quick start is quickstart.ts, verbatim', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.equal(block, readFileSync(join(ROOT, 'tests/package/quickstart.ts'), 'utf8'), 'README.md → Quick start shows tests/package/quickstart.ts');
});

test('npm pack → fresh Vite app running the README quick start → one chat in Chromium', { timeout: 10 * 60_000 }, async (t) => {
  const { step, timings } = stopwatch();

  // 1. Build and pack exactly what `npm publish` would ship.
  const { tarball, files } = await buildAndPack(ROOT, work, step);
  t.diagnostic(`tarball ${tarball.split('/').pop()}: ${files.length} files: ${files.join(', ')}`);
  assert.deepEqual(files.filter((p) => !SHIPPED.test(p)), [], 'only the bundles, their maps, the public declarations and the docs are shipped');
  const built = readdirSync(join(ROOT, 'dist')).filter((f) => f.endsWith('.js')).map((f) => `dist/${f}`);
  assert.deepEqual(built.filter((f) => !files.includes(f)), [], 'every JavaScript file of the build is shipped (chunks included)');
  for (const must of ['package.json', 'README.md', 'dist/webvlm.js', 'dist/webvlm.worker.js', 'dist/types/index.d.ts', 'dist/types/errors.d.ts']) {
    assert.ok(files.includes(must), `the tarball ships ${must}`);
  }
  assert.ok(!files.some((p) => /^dist\/types\/(gpu|kernels|models|worker)\//.test(p)), 'no declarations of engine internals');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const targets = [pkg.main, pkg.types, pkg.exports['.'].types, pkg.exports['.'].default, pkg.exports['./worker']];
  for (const target of targets) assert.ok(files.includes(target.replace(/^\.\//, '')), `package.json points at ${target}, which the tarball ships`);
  for (const bundle of built) {
    const code = readFileSync(join(ROOT, bundle), 'utf8');
    assert.doesNotMatch(code, /^\s*(import|export)\s[^;]*?from\s*["'][^./]/m, `${bundle} imports no bare specifiers (a static host can serve it as is)`);
    assert.doesNotMatch(code, /\bimport\s*\(\s*["'][^./]/, `${bundle} has no bare dynamic imports`);
  }
  assert.match(readFileSync(join(ROOT, 'dist/webvlm.js'), 'utf8'), /new Worker\(new URL\("\.\/webvlm\.worker\.js", import\.meta\.url\)/, 'the worker URL is relative to webvlm.js');

  // 2. A fresh app: the quick start as its main file; the tarball installed as a user would.
  const app = join(work, 'app');
  writeQuickstartApp(app);
  await step('npm install <tarball>', () => run('npm', ['install', ...NPM_QUIET, tarball], { cwd: app, maxBuffer: 1 << 26 }));
  assert.ok(existsSync(join(app, 'node_modules/webvlm/dist/webvlm.js')));

  // 3. The quick start type-checks against the shipped declarations; 4. builds with Vite; 5. answers in Chromium.
  await step('tsc (consumer)', () => typecheck(app));
  await step('tsc (consumer, moduleResolution NodeNext)', () => typecheck(app, { moduleResolution: 'NodeNext' }));
  const server = await step('vite build + preview (consumer)', () => buildAndPreview(app));
  closePreview = server.close;
  browser = await launchChromium();
  const r = await openPage(browser, { repo: QUICKSTART_MODEL, dir: TINY_CHECKPOINT });
  const res = await step('chat in Chromium (load + answer)', async () => {
    await r.page.goto(`${server.origin}/`);
    return quickstartAnswer(r);
  });
  t.diagnostic(`finish ${res.finishReason}, ${res.usage.completionTokens} tokens, ${res.usage.visualTokens} visual tokens, TTFT ${res.usage.timeToFirstTokenMs.toFixed(0)} ms; answer ${JSON.stringify(res.answer.slice(0, 80))}`);
  checkQuickstart(r, res);
  assert.ok(r.workers.some((u) => u === `${server.origin}${server.workerFile}`), `the worker came from the consumer's build (${r.workers.join(', ')})`);
  console.log(`# timings (ms): ${JSON.stringify(timings)}`);
});
