/**
 * Image preprocessing under SmolVLM's processor rules (longest edge 2048, 512 px tiles, model tiler):
 * the GPU path (kernels/resample.ts: upload RGBA8 once, resize chain + tiles + normalisation on the GPU)
 * vs the CPU reference `imagePixels` (Lanczos in JS) on the same page, for a 1024×768 input (upscaled to
 * 2048×1536) and a 4000×3000 one (downscaled). Both give 13 frames. Reported: GPU wall ms including the
 * 4 B/px upload (what the worker pays), GPU kernels alone, CPU ms, and the GPU output's max |Δ| vs the CPU
 * (0 = bit-exact; this also checks the kernels on the compat GLES adapter, which the tests do not run on).
 */
import { imagePixels, parseProcessorConfig, planImage } from '../src/models/idefics3/processor.ts';
import type { PixelImage } from '../src/input/resample.ts';
import { readF32 } from '../src/gpu/io.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { preprocessImage, uploadImage } from '../src/kernels/resample.ts';
import { timeKernel, timeWall } from './timing.ts';
import type { Bench, BenchResult } from './types.ts';

const SMOLVLM = parseProcessorConfig(
  { size: { longest_edge: 2048 }, max_image_size: { longest_edge: 512 }, resample: 1, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], rescale_factor: 1 / 255 },
  { image_seq_len: 64 },
);

/** An opaque photo-like RGBA image (what a canvas decode gives): gradients + texture. */
function photo(w: number, h: number): PixelImage {
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      const n = ((x * 73856093) ^ (y * 19349663)) & 31;
      data[i] = ((x * 255) / w + n) & 255;
      data[i + 1] = ((y * 255) / h + n) & 255;
      data[i + 2] = (((x >> 4) ^ (y >> 4)) & 1 ? 200 : 40) + n;
      data[i + 3] = 255;
    }
  }
  return { data, width: w, height: h, channels: 4 };
}

/** Temporaries reused across iterations (same sizes every call; the queue orders the uses). */
function reusingScratch(gpu: GpuContext) {
  const pool = new Map<string, GPUBuffer>();
  let k = 0;
  return {
    reset: () => void (k = 0),
    scratch: (bytes: number, label: string) => {
      const key = `${label}#${k++}`;
      let b = pool.get(key);
      if (!b || b.size < bytes) {
        if (b) gpu.allocator.destroy(b);
        b = gpu.allocator.create(bytes, undefined, label);
        pool.set(key, b);
      }
      return b;
    },
    destroy: () => pool.forEach((b) => gpu.allocator.destroy(b)),
  };
}

export const benches: Bench[] = [
  {
    name: 'resample preprocess',
    async run({ gpu, log }) {
      const out: BenchResult[] = [];
      for (const [w, h] of [[1024, 768], [4000, 3000]] as const) {
        const img = photo(w, h);
        const plan = planImage(w, h, SMOLVLM, 'model');
        const M = SMOLVLM.tileSize;
        const n = plan.frames * 3 * M * M;
        const pixels = gpu.allocator.create(n * 4);
        const s = reusingScratch(gpu);
        const run = (image: GPUBuffer, rec: ReturnType<GpuContext['recorder']>) => {
          s.reset();
          preprocessImage(gpu, rec, { image, width: w, height: h, format: 'rgba', plan, config: SMOLVLM, out: pixels, scratch: s.scratch });
        };
        const tag = `${w}x${h} → ${plan.resizes.map((r) => `${r.width}x${r.height}`).join('→')}, ${plan.frames} frames`;

        // Upload + kernels + wait: what encodeImageRgba adds before the tower.
        const rec = gpu.recorder('bench');
        const full = await timeWall(async () => {
          const u = uploadImage(gpu, img);
          run(u.buffer, rec);
          rec.submit();
          await gpu.sync();
          gpu.allocator.destroy(u.buffer);
        }, { warmup: 1, iters: 3 });
        rec.destroy();
        // Kernels alone (image resident).
        const u = uploadImage(gpu, img);
        const kern = await timeKernel(gpu, (r) => run(u.buffer, r), { warmup: 1, iters: 3, batch: 1 });
        // CPU reference on the same page.
        let ref: Float32Array = new Float32Array(0);
        const cpu = await timeWall(async () => void (ref = imagePixels(img, plan, SMOLVLM)), { warmup: 1, iters: 3 });
        const got = await readF32(gpu, pixels, n);
        let d = 0;
        for (let i = 0; i < n; i++) d = Math.max(d, Math.abs(got[i] - ref[i]));
        log(`${tag}: GPU ${full.ms.toFixed(1)} ms (kernels ${kern.ms.toFixed(1)} ms), CPU ${cpu.ms.toFixed(1)} ms, max |Δ| vs CPU ${d}`);
        out.push(
          { name: `preprocess ${w}x${h} GPU upload+kernels`, value: full.ms, unit: 'ms' },
          { name: `preprocess ${w}x${h} GPU kernels`, value: kern.ms, unit: 'ms' },
          { name: `preprocess ${w}x${h} CPU imagePixels`, value: cpu.ms, unit: 'ms' },
          { name: `preprocess ${w}x${h} CPU ÷ GPU`, value: cpu.ms / full.ms, unit: 'x' },
          { name: `preprocess ${w}x${h} GPU max |Δ| vs CPU`, value: d, unit: '' },
        );
        gpu.allocator.destroy(u.buffer);
        gpu.allocator.destroy(pixels);
        s.destroy();
      }
      return out;
    },
  },
];
