/**
 * `npm run bench`: runs every bench/*.bench.ts in real Chromium on each software adapter
 * (SwiftShader, and the compat GLES adapter on llvmpipe), prints a table and writes
 * bench/results.json (an array of {name, value, unit}). Peers are measured in the same run.
 *   npm run bench                       all modules, both adapters
 *   npm run bench -- int4 --adapter gles   modules whose name contains "int4", one adapter
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, type BrowserAdapter } from '../tests/harness/browser.ts';
import { startViteServer } from '../tests/harness/vite-server.ts';
import type { Bench, BenchResult } from './types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const adapterArg = args.includes('--adapter') ? args[args.indexOf('--adapter') + 1] : undefined;
const filters = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--adapter');
const adapters: BrowserAdapter[] = adapterArg ? [adapterArg as BrowserAdapter] : ['swiftshader', 'gles'];

const modules = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.bench.ts') && (!filters.length || filters.some((x) => f.includes(x))))
  .sort()
  .map((f) => `bench/${f}`);

// Assets (e.g. ONNX single-op models for peers) are built in Node and served to the page.
const assetDir = join(root, 'bench', 'assets-generated');
mkdirSync(assetDir, { recursive: true });
const benchNames: Record<string, string[]> = {};
for (const m of modules) {
  const mod = (await import(new URL(`../${m}`, import.meta.url).href)) as { benches: Bench[]; assets?: () => Promise<Record<string, Uint8Array>> };
  benchNames[m] = mod.benches.map((b) => b.name);
  if (mod.assets) for (const [name, bytes] of Object.entries(await mod.assets())) writeFileSync(join(assetDir, name), bytes);
}

const server = await startViteServer();
const all: BenchResult[] = [];
for (const adapter of adapters) {
  const browser = await launchChromium({ adapter });
  const page = await browser.newPage();
  if (process.env.WEBVLM_BENCH_E2E_MODEL) {
    const id = process.env.WEBVLM_BENCH_E2E_MODEL === 'test' ? 'webvlm/random-smolvlm-test' : process.env.WEBVLM_BENCH_E2E_MODEL;
    await page.addInitScript((m) => ((globalThis as { __E2E_MODEL?: string }).__E2E_MODEL = m), id);
  }
  if (process.env.WEBVLM_BENCH_256M) await page.addInitScript(() => ((globalThis as { __BENCH_256M?: boolean }).__BENCH_256M = true));
  // Budget bench subsets (the 256M-shaped runs take minutes per frame on CPU adapters): e.g. WEBVLM_BENCH_SIZES=1024x768
  // WEBVLM_BENCH_MODES=model,native.
  const subset = { sizes: process.env.WEBVLM_BENCH_SIZES ?? '', modes: process.env.WEBVLM_BENCH_MODES ?? '' };
  await page.addInitScript((v) => ((globalThis as { __BENCH_SUBSET?: typeof v }).__BENCH_SUBSET = v), subset);
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${server.origin}/bench/page.html`);
  await page.waitForFunction(() => (window as any).__bench !== undefined, undefined, { timeout: 60_000 });
  const { line } = await page.evaluate((a) => (window as any).__bench.setup(a), adapter);
  console.log(`\n## ${adapter}: ${line}`);
  for (const m of modules) {
    for (const name of benchNames[m]) {
      const r = await page.evaluate(([mm, n, a]) => (window as any).__bench.run(mm, n, a), [m, name, adapter] as const);
      for (const l of r.logs) console.log(`   ${l}`);
      if (r.error) console.log(`   ✖ ${m} › ${name}: ${r.error.split('\n')[0]}`);
      for (const x of r.results as BenchResult[]) {
        const res = { name: `${adapter}: ${x.name}`, value: x.value, unit: x.unit };
        all.push(res);
        console.log(`   ${res.name.padEnd(70)} ${fmt(res.value).padStart(12)} ${res.unit}`);
      }
    }
  }
  await browser.close();
}
await server.close();
writeFileSync(join(root, 'bench', 'results.json'), JSON.stringify(all, null, 2));
console.log(`\nwrote bench/results.json (${all.length} figures)`);

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 0.1 ? v.toFixed(3) : v.toExponential(2);
}
