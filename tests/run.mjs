#!/usr/bin/env node
/**
 * The test command (`npm test`): every tests/**\/*.test.ts through node:test, with one shared Vite
 * server for the browser tests. Ends with the line `N passed, N failed, N skipped`.
 *   npm test                 all tests
 *   npm test -- kernels      only files whose path contains "kernels"
 */
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = walk(join(root, 'tests'))
  .filter((f) => !filters.length || filters.some((x) => relative(root, f).includes(x)))
  .sort();
if (!files.length) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(2);
}

// One Vite server for every browser test file (each file starts its own Chromium).
await import('./node/register.mjs');
const { startViteServer } = await import('./harness/vite-server.ts');
const server = await startViteServer();
process.env.WEBVLM_TEST_ORIGIN = server.origin;

// Test files are TypeScript: every child process loads tsx and the `?raw` hooks.
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${new URL('./node/register.mjs', import.meta.url).href}`.trim();

const started = Date.now();
let passed = 0, failed = 0, skipped = 0;
const failures = [];
const stream = run({
  files,
  concurrency: 1,
  timeout: 20 * 60_000,
});
stream.on('test:pass', (e) => {
  if (e.details?.type === 'suite') return;
  if (e.skip || e.todo) skipped++;
  else passed++;
});
stream.on('test:fail', (e) => {
  if (e.details?.type === 'suite' && e.details?.error?.failureType === 'subtestsFailed') return;
  failed++;
  failures.push(`${e.file ? relative(root, e.file) : ''} › ${e.name}`);
});
stream.compose(spec).pipe(process.stdout);
await new Promise((resolve) => stream.on('end', resolve));
await server.close();
const secs = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) console.log(`\nFailed:\n${failures.map((f) => `  ${f}`).join('\n')}`);
console.log(`\ntest time: ${secs} s`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed ? 1 : 0;
