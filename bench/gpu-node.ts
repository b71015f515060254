/**
 * For a machine with a real GPU and no browser: Node + Dawn (npm `webgpu`) on the system's Vulkan driver.
 *   1. every kernel case of tests/kernels/*.cases.ts against its CPU reference (the same cases CI runs on
 *      SwiftShader/lavapipe), with the variants this adapter picks;
 *   2. the tiny trained model's held-out accuracy (f32 and int4, 'model' tiling) — end to end on this GPU;
 *   3. our own timings: the bench modules that need no browser (peers — onnxruntime-web — need Chromium and
 *      are reported as errors here), with the hub served from `models/` as the dev server does.
 *
 *   node --import ./tests/node/register.mjs bench/gpu-node.ts [cases] [accuracy] [bench=budget,e2e,...]
 *
 * WEBVLM_BENCH_256M / WEBVLM_BENCH_E2E_MODEL / WEBVLM_BENCH_SIZES / WEBVLM_BENCH_MODES as for `npm run bench`; the
 * 256M-shaped benches need models/generated/256m (models/make-checkpoint.ts --size 256m). Writes
 * bench/gpu-node-results.json (or $WEBVLM_GPU_OUT).
 */
import { createServer } from 'node:http';
import { readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dawnGpu } from '../tests/harness/dawn.ts';
import { runCaseOn, type KernelCase } from '../tests/harness/cases.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { describeCaps } from '../src/gpu/device.ts';
import { hubMiddleware } from '../demo/hub-middleware.ts';
import type { Bench, BenchResult } from './types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const want = (s: string) => !args.length || args.includes(s) || args.some((a) => a.startsWith(`${s}=`));
const benchList = args.find((a) => a.startsWith('bench='))?.slice(6).split(',') ?? ['gemm', 'int4', 'attention', 'gemv', 'compress', 'resample', 'ops', 'e2e', 'budget'];
const report: Record<string, unknown> = {};
const save = () => writeFileSync(process.env.WEBVLM_GPU_OUT ?? `${root}bench/gpu-node-results.json`, JSON.stringify(report, null, 2));

const g = await dawnGpu();
if (!g) throw new Error('no Dawn adapter');
const gpu = await GpuContext.create({ gpu: g });
report.adapter = describeCaps(gpu.caps);
console.log(`# adapter: ${report.adapter}`);

if (want('cases')) {
  const t0 = performance.now();
  const files = readdirSync(`${root}tests/kernels`).filter((f) => f.endsWith('.cases.ts')).sort();
  const failed: string[] = [];
  let passed = 0, skipped = 0;
  for (const f of files) {
    const { cases } = (await import(`../tests/kernels/${f}`)) as { cases: KernelCase[] };
    for (const kc of cases) {
      const logs: string[] = [];
      try {
        const skip = await runCaseOn(gpu, kc, (m) => logs.push(m));
        if (skip) {
          skipped++;
          console.log(`  - ${f} › ${kc.name}: skipped (${skip})`);
          continue;
        }
        passed++;
        console.log(`  ✔ ${f} › ${kc.name}${logs.length ? ` — ${logs.join('; ')}` : ''}`);
      } catch (e) {
        failed.push(`${f} › ${kc.name}: ${(e as Error).message.split('\n')[0]}`);
        console.log(`  ✖ ${f} › ${kc.name}: ${(e as Error).message}`);
      }
    }
  }
  report.cases = { passed, failed, skipped, seconds: (performance.now() - t0) / 1000 };
  console.log(`# kernel cases: ${passed} passed, ${failed.length} failed, ${skipped} skipped in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  save();
}

if (want('accuracy')) {
  const { Engine } = await import('../src/engine/engine.ts');
  const { DirSource } = await import('../tests/helpers/dir-source.ts');
  const { readHeldout, evaluate, TINY_DIR, TINY_REPO } = await import('../models/tiny/webvlm-eval.ts');
  const rows = readHeldout();
  const acc: unknown[] = [];
  for (const weights of ['f32', 'int4'] as const) {
    const engine = await Engine.create(gpu, TINY_REPO, { weights, contextLength: 512, source: new DirSource(`${TINY_DIR}checkpoint`) });
    const r = await evaluate(engine, rows, { weights, detail: 'high', compression: 1 });
    engine.dispose();
    console.log(`# tiny model ${weights}: ${(100 * r.accuracy).toFixed(1)} % (${r.correct}/${r.n}) in ${r.seconds.toFixed(1)} s`);
    acc.push({ weights, accuracy: r.accuracy, correct: r.correct, n: r.n, seconds: r.seconds, perTask: r.perTask });
  }
  report.accuracy = acc;
  save();
}

if (args.some((a) => a.startsWith('bench=')) || !args.length) {
  // The bench modules fetch `${location.origin}/hub/...`, as on the dev server.
  const mw = hubMiddleware(`${root}models`);
  const server = createServer((req, res) => mw(req, res, () => ((res.statusCode = 404), res.end())));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  (globalThis as { location?: unknown }).location = { origin: `http://127.0.0.1:${port}` };
  // The same switches bench/run.ts passes to its page.
  if (process.env.WEBVLM_BENCH_256M) (globalThis as { __BENCH_256M?: boolean }).__BENCH_256M = true;
  if (process.env.WEBVLM_BENCH_E2E_MODEL === 'test') (globalThis as { __E2E_MODEL?: string }).__E2E_MODEL = 'webvlm/random-smolvlm-test';
  (globalThis as { __BENCH_SUBSET?: unknown }).__BENCH_SUBSET = { sizes: process.env.WEBVLM_BENCH_SIZES ?? '', modes: process.env.WEBVLM_BENCH_MODES ?? '' };
  // An idle GPU runs at a fraction of its clock (an H100 read 345 of 1980 MHz) and short benches finish before
  // it ramps up: keep it busy for 2 s first.
  {
    const { copy } = await import('../src/kernels/copy.ts');
    const bytes = 64 << 20, a = gpu.allocator.create(bytes), b = gpu.allocator.create(bytes);
    for (const t0 = performance.now(); performance.now() - t0 < 2000; ) {
      const rec = gpu.recorder('warm-up');
      for (let i = 0; i < 16; i++) copy(gpu, rec, { src: a, dst: b, bytes });
      rec.submit();
      rec.destroy();
      await gpu.sync();
    }
    gpu.allocator.destroy(a);
    gpu.allocator.destroy(b);
  }
  const results: BenchResult[] = [];
  for (const name of benchList) {
    const mod = (await import(`./${name}.bench.ts`)) as { benches: Bench[]; assets?: () => Promise<Record<string, Uint8Array>> };
    const assets = mod.assets ? await mod.assets().catch(() => ({}) as Record<string, Uint8Array>) : {};
    for (const b of mod.benches) {
      const t0 = performance.now();
      try {
        const rs = await b.run({
          gpu, adapter: 'swiftshader', // only read to pick CPU-adapter shortcuts; gpu.caps.software is what decides
          asset: async (n) => (assets[n] ? (assets[n].slice().buffer as ArrayBuffer) : Promise.reject(new Error(`no asset ${n}`))),
          log: (m) => console.log(`   ${m}`),
        });
        for (const r of rs) console.log(`   ${r.name.padEnd(72)} ${r.value.toPrecision(4).padStart(10)} ${r.unit}`);
        results.push(...rs);
      } catch (e) {
        console.log(`   ✖ ${name} › ${b.name}: ${(e as Error).message.split('\n')[0]}`);
      }
      console.log(`# bench ${name} › ${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      report.bench = results;
      save();
    }
  }
  server.close();
}
gpu.destroy();
save();
process.exit(0);
