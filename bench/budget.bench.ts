/**
 * Visual-token budget (issue: native tiling and compression as user options): for 256×256, 1024×768 and
 * 2048×1536 images, per mode — visual tokens, image encode ms, prefill ms, time to first token — measured
 * end to end through the engine (one generated token) on the random test checkpoint (full run), and on the
 * SmolVLM-256M-shaped checkpoint where `WEBVLM_BENCH_256M=1` (slow on CPU adapters: minutes per frame).
 * Ratios: native TTFT ÷ model TTFT on 1024×768 (goal ≤ 0.4); compressed ÷ uncompressed visual tokens (≤ 0.25).
 * Subsets: WEBVLM_BENCH_SIZES=1024x768 WEBVLM_BENCH_MODES=model,native (bench/run.ts passes them to the page).
 */
import { Engine } from '../src/engine/engine.ts';
import type { Bench, BenchResult } from './types.ts';

const SIZES: Array<[number, number]> = [[256, 256], [1024, 768], [2048, 1536]];
const MODES: Array<{ name: string; detail: 'high' | 'auto' | 'low'; compression?: number }> = [
  { name: 'model', detail: 'high' },
  { name: 'native', detail: 'auto' },
  { name: 'low', detail: 'low' },
  { name: 'model+compress2', detail: 'high', compression: 2 },
  { name: 'native+compress2', detail: 'auto', compression: 2 },
];

function image(w: number, h: number) {
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      data[i] = (x * 7) & 255;
      data[i + 1] = (y * 5) & 255;
      data[i + 2] = ((x ^ y) * 3) & 255;
      data[i + 3] = 255;
    }
  return { width: w, height: h, channels: 4 as const, data };
}

function subset(): { sizes: typeof SIZES; modes: typeof MODES } {
  const v = (globalThis as { __BENCH_SUBSET?: { sizes: string; modes: string } }).__BENCH_SUBSET;
  const sizes = v?.sizes ? SIZES.filter(([w, h]) => v.sizes.split(',').includes(`${w}x${h}`)) : SIZES;
  const modes = v?.modes ? MODES.filter((m) => v.modes.split(',').includes(m.name)) : MODES;
  return { sizes, modes };
}

async function run(ctx: Parameters<Bench['run']>[0], model: string, label: string): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const { sizes, modes } = subset();
  const engine = await Engine.create(ctx.gpu, model, { baseUrl: `${location.origin}/hub`, weights: 'int4', contextLength: 2048 });
  try {
    const ttft = new Map<string, number>();
    const tokens = new Map<string, number>();
    const once = async (img: ReturnType<typeof image>, m: (typeof MODES)[number]) => {
      engine.reset();
      for await (const d of engine.chat({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe.' }] }], images: [img], detail: m.detail, compression: m.compression, maxTokens: 1 })) {
        if (d.type === 'done') return d.usage;
      }
      throw new Error('no done delta');
    };
    // On a GPU a run takes milliseconds: warm up (pipeline compilation) and take the median of 5 by TTFT.
    // On CPU adapters one run takes seconds to minutes, and compilation is a small part of it.
    const reps = ctx.gpu.caps.software ? 1 : 5;
    if (reps > 1) for (const m of modes) await once(image(64, 64), m);
    for (const [w, h] of sizes) {
      const img = image(w, h);
      for (const m of modes) {
        const runs = [];
        for (let r = 0; r < reps; r++) runs.push(await once(img, m));
        runs.sort((a, b) => a.timeToFirstTokenMs - b.timeToFirstTokenMs);
        const u = runs[Math.floor(runs.length / 2)];
        const key = `${w}x${h} ${m.name}`;
        ttft.set(key, u.timeToFirstTokenMs);
        tokens.set(key, u.visualTokens);
        out.push(
          { name: `budget ${label} ${key}: visual tokens`, value: u.visualTokens, unit: 'tokens' },
          { name: `budget ${label} ${key}: image encode`, value: u.imageEncodeMs, unit: 'ms' },
          { name: `budget ${label} ${key}: prefill`, value: u.prefillMs, unit: 'ms' },
          { name: `budget ${label} ${key}: time to first token`, value: u.timeToFirstTokenMs, unit: 'ms' },
        );
        ctx.log(`${label} ${key}: ${u.visualTokens} visual tokens, encode ${u.imageEncodeMs.toFixed(0)} ms, prefill ${u.prefillMs.toFixed(0)} ms, TTFT ${u.timeToFirstTokenMs.toFixed(0)} ms`);
      }
    }
    if (ttft.has('1024x768 native') && ttft.has('1024x768 model')) {
      out.push({ name: `budget ${label} 1024x768: native TTFT ÷ model TTFT (goal ≤ 0.4)`, value: ttft.get('1024x768 native')! / ttft.get('1024x768 model')!, unit: 'ratio' });
    }
    if (tokens.has('1024x768 model+compress2') && tokens.has('1024x768 model')) {
      out.push({ name: `budget ${label} compressed ÷ uncompressed visual tokens (goal ≤ 0.25)`, value: tokens.get('1024x768 model+compress2')! / tokens.get('1024x768 model')!, unit: 'ratio' });
    }
  } finally {
    engine.dispose();
  }
  return out;
}

export const benches: Bench[] = [
  { name: 'budget (test checkpoint)', run: (ctx) => run(ctx, 'webvlm/random-smolvlm-test', 'test-ckpt') },
  {
    name: 'budget (256M shapes)',
    async run(ctx) {
      if (!(globalThis as { __BENCH_256M?: boolean }).__BENCH_256M) {
        ctx.log('budget (256M shapes) skipped: set WEBVLM_BENCH_256M=1 (minutes per frame on CPU adapters)');
        return [];
      }
      return run(ctx, 'webvlm/random-smolvlm-256m', '256M');
    },
  },
];
