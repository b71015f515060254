/**
 * Peak JS memory and GPU memory while loading the SmolVLM-256M-shaped checkpoint (int4 and f32) through the
 * real hub download path (local hub server), in Node on Dawn. Run: node --import ./tests/node/register.mjs bench/load-memory.ts
 * Writes its figures to bench/load-memory.json (merged into the README table by hand).
 */
import { writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dawnGpu } from '../tests/harness/dawn.ts';
import { startHubServer } from '../tests/helpers/hub-server.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { loadModel } from '../src/engine/load.ts';
import { writeCheckpoint } from '../models/make-checkpoint.ts';

const dir = fileURLToPath(new URL('../models/generated/256m/', import.meta.url));
if (!existsSync(`${dir}model.safetensors`)) await writeCheckpoint({ size: '256m', out: dir });
const hub = await startHubServer({ repos: { 'webvlm/random-smolvlm-256m': dir } });
const gpu = await GpuContext.create({ gpu: (await dawnGpu())! });
const results: Array<{ name: string; value: number; unit: string }> = [];
for (const weights of ['int4', 'f32'] as const) {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage();
  let peakHeap = 0, peakBuffers = 0;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed - base.heapUsed);
    peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
  }, 20);
  const t0 = performance.now();
  const m = await loadModel(gpu, 'webvlm/random-smolvlm-256m', { baseUrl: hub.url, weights });
  const ms = performance.now() - t0;
  clearInterval(timer);
  results.push(
    { name: `256M load ${weights}: time (Node, Dawn, local hub)`, value: ms, unit: 'ms' },
    { name: `256M load ${weights}: peak JS heap above baseline`, value: peakHeap / 1e6, unit: 'MB' },
    { name: `256M load ${weights}: peak ArrayBuffer memory above baseline`, value: peakBuffers / 1e6, unit: 'MB' },
    { name: `256M ${weights}: weights on the GPU`, value: m.model.weightBytes / 1e6, unit: 'MB' },
    { name: `256M ${weights}: KV cache per 1k tokens`, value: (2 * m.config.text.numHiddenLayers * m.config.text.numKeyValueHeads * m.config.text.headDim * 4 * 1024) / 1e6, unit: 'MB' },
  );
  m.model.destroy();
}
for (const r of results) console.log(`${r.name.padEnd(60)} ${r.value.toFixed(1).padStart(10)} ${r.unit}`);
writeFileSync(fileURLToPath(new URL('./load-memory.json', import.meta.url)), JSON.stringify(results, null, 2));
await hub.close();
gpu.destroy();
process.exit(0);
