/**
 * End to end on the checkpoint with SmolVLM-256M's real shapes (random weights, 513,028,808 bytes, served in
 * hub layout): load time, image encode, prefill tokens/s, time to first token, decode tokens/s, and decode
 * tokens/s ÷ roofline (weight bytes read per token ÷ the copy kernel's bandwidth on the same adapter).
 * Set WEBVLM_BENCH_E2E_MODEL=test to run it on the small test checkpoint instead.
 */
import { loadModel } from '../src/engine/load.ts';
import { copy } from '../src/kernels/copy.ts';
import { timeKernel } from './timing.ts';
import type { Bench, BenchResult } from './types.ts';

const MODEL = (globalThis as { __E2E_MODEL?: string }).__E2E_MODEL ?? 'webvlm/random-smolvlm-256m';

function image(w: number, h: number) {
  const data = new Uint8Array(w * h * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return { width: w, height: h, channels: 4 as const, data };
}

async function copyBandwidth(ctx: Parameters<Bench['run']>[0]): Promise<number> {
  const bytes = 64 << 20;
  const a = ctx.gpu.allocator.create(bytes), b = ctx.gpu.allocator.create(bytes);
  const t = await timeKernel(ctx.gpu, (rec) => copy(ctx.gpu, rec, { src: a, dst: b, bytes }), { iters: 5, batch: 2 });
  ctx.gpu.allocator.destroy(a);
  ctx.gpu.allocator.destroy(b);
  return (2 * bytes) / (t.ms * 1e6);
}

export const benches: Bench[] = [
  {
    name: 'e2e',
    async run(ctx) {
      const out: BenchResult[] = [];
      const { gpu } = ctx;
      const t0 = performance.now();
      const m = await loadModel(gpu, MODEL, { baseUrl: `${location.origin}/hub`, weights: 'int4' });
      out.push({ name: `e2e ${MODEL} load (int4)`, value: performance.now() - t0, unit: 'ms' });
      out.push({ name: `e2e weights on GPU`, value: m.model.weightBytes / 1e6, unit: 'MB' });
      const msgs = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is in this image?' }] }];
      // A 512×512 image is one frame: the encoder cost of a single tile (the model mode tiles larger images).
      const proc = m.processor.processChat(msgs, [image(512, 384)], { detail: 'auto' });
      const frames = proc.pixelShape[0];
      const { result: features, byKernel } = await gpu.profile(() => m.model.encodeImage(proc.pixelValues, frames));
      const te = performance.now();
      const f2 = await m.model.encodeImage(proc.pixelValues, frames);
      const encodeMs = performance.now() - te;
      gpu.allocator.destroy(f2);
      out.push({ name: `e2e image encode (${frames} frames)`, value: encodeMs, unit: 'ms' });
      ctx.log(`encode by kernel: ${byKernel.slice(0, 8).map((k) => `${k.kernel} ${k.ms.toFixed(1)}ms×${k.count}`).join(', ')}`);
      const cache = m.model.newCache(2048);
      const tp = performance.now();
      const logits = await m.model.forward(proc.inputIds, cache, [features]);
      const prefillMs = performance.now() - tp;
      out.push({ name: `e2e prefill ${proc.inputIds.length} tokens`, value: (proc.inputIds.length * 1000) / prefillMs, unit: 'tokens/s' });
      out.push({ name: 'e2e time to first token (encode + prefill)', value: encodeMs + prefillMs, unit: 'ms' });
      let tok = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[tok]) tok = i;
      const steps = 8;
      const td = performance.now();
      for (let i = 0; i < steps; i++) await m.model.forward([tok], cache);
      const decodeMs = (performance.now() - td) / steps;
      const tps = 1000 / decodeMs;
      out.push({ name: 'e2e decode', value: tps, unit: 'tokens/s' });
      // The engine's greedy path: argmax on the GPU, 4 bytes read back instead of the logits.
      await m.model.forwardArgmax([tok], cache);
      const ta = performance.now();
      let cpuMs = 0;
      for (let i = 0; i < steps; i++) {
        // Everything up to the submit runs synchronously inside the call: recording, encoding, queue.submit.
        const tc = performance.now();
        const p = m.model.forwardArgmax([tok], cache);
        cpuMs += performance.now() - tc;
        await p;
      }
      out.push({ name: 'e2e decode (greedy: argmax on the GPU)', value: 1000 / ((performance.now() - ta) / steps), unit: 'tokens/s' });
      out.push({ name: 'e2e decode step: CPU time to record, encode and submit', value: cpuMs / steps, unit: 'ms' });
      const { byKernel: dk } = await gpu.profile(() => m.model.forward([tok], cache));
      const gpuMs = dk.reduce((a, k) => a + k.ms, 0);
      out.push({ name: 'e2e decode step: GPU kernel time (timestamps, one pass per dispatch)', value: gpuMs, unit: 'ms' });
      out.push({ name: 'e2e decode step: wall time', value: decodeMs, unit: 'ms' });
      ctx.log(`decode step by kernel: ${dk.slice(0, 8).map((k) => `${k.kernel} ${k.ms.toFixed(2)}ms×${k.count}`).join(', ')}`);
      ctx.log(`bind groups: ${gpu.bindGroups.hits} reused, ${gpu.bindGroups.misses} created`);
      // Roofline: the text weights (not the vision tower) are read once per decoded token.
      const bw = await copyBandwidth(ctx);
      const rooflineTps = (bw * 1e9) / m.model.textWeightBytes;
      out.push({ name: 'e2e copy-kernel bandwidth', value: bw, unit: 'GB/s' });
      out.push({ name: 'e2e decode ÷ roofline (goal ≥ 0.6)', value: tps / rooflineTps, unit: 'ratio' });
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      m.model.destroy();
      return out;
    },
  },
];
