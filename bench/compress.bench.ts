/**
 * Token compression (src/kernels/compress.ts) at SmolVLM shapes: input tokens per second and GB/s.
 * GB/s counts the compulsory traffic only — X read once, projection weights read once, Y written once —
 * so it is comparable across variants (the projected path moves more: K/V written and read back).
 * Projected variants run on the adapter's default attention kernel (their time is the matmuls').
 *   post-connector: 17 frames × 8×8 tokens × 576 (a 4×4-tile image + global), s = 2 → 4×4 per frame
 *   pre-connector:  32×32 × 768 SigLIP grid per frame, s = 2 → 16×16 per frame
 */
import { compress, compressGrid, compressWorkspaceBytes, type CompressArgs } from '../src/kernels/compress.ts';
import { quantizeInt4, uploadInt4 } from '../src/kernels/int4.ts';
import { upload } from '../src/gpu/io.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { randomF32 } from '../tests/harness/check.ts';
import { timeKernel } from './timing.ts';
import type { Bench, BenchResult } from './types.ts';

interface Shape {
  label: string;
  F: number;
  H: number;
  W: number;
  C: number;
  heads: number;
  s: number;
  proj?: 'f32' | 'int4';
  variant?: 'row' | 'workgroup';
  iters?: { warmup: number; iters: number; batch: number };
}

async function measure(gpu: GpuContext, sh: Shape, log: (m: string) => void): Promise<BenchResult[]> {
  const { F, H, W, C, heads, s } = sh;
  const { Hq, Wq } = compressGrid(H, W, s);
  const owned: GPUBuffer[] = [];
  const keep = <T extends GPUBuffer>(b: T) => (owned.push(b), b);
  const x = keep(upload(gpu, randomF32(F * H * W * C, 1)));
  const out = keep(gpu.allocator.create(F * Hq * Wq * C * 4));
  let weightBytes = 0;
  const proj: CompressArgs['proj'] = {};
  if (sh.proj) {
    for (const [i, name] of (['q', 'k', 'v', 'o'] as const).entries()) {
      const w = randomF32(C * C, 10 + i, 1 / Math.sqrt(C));
      if (sh.proj === 'int4') {
        const g = uploadInt4(gpu, quantizeInt4(w, C, C, { group: 32, scaleType: 'f16' }));
        keep(g.packed as GPUBuffer);
        keep(g.scales as GPUBuffer);
        proj[name] = { int4: g };
        weightBytes += (g.packed as GPUBuffer).size + (g.scales as GPUBuffer).size;
      } else {
        proj[name] = { w: keep(upload(gpu, w)) };
        weightBytes += C * C * 4;
      }
    }
  }
  const args: CompressArgs = { x, out, F, H, W, C, heads, s, proj, residual: !!sh.proj, variant: sh.variant };
  const ws = compressWorkspaceBytes(args);
  if (ws) args.workspace = keep(gpu.allocator.create(ws));
  const t = await timeKernel(gpu, (rec) => compress(gpu, rec, args), sh.iters);
  const tokens = F * H * W;
  const bytes = tokens * C * 4 + weightBytes + F * Hq * Wq * C * 4;
  log(`compress ${sh.label}: ${t.ms.toFixed(2)} ms (${t.clock}), samples ${t.samples.map((v) => v.toFixed(2)).join(' ')}`);
  for (const b of owned) gpu.allocator.destroy(b);
  return [
    { name: `compress ${sh.label} ms`, value: t.ms, unit: 'ms' },
    { name: `compress ${sh.label} tokens/s`, value: tokens / (t.ms / 1000), unit: 'tok/s' },
    { name: `compress ${sh.label} GB/s`, value: bytes / (t.ms * 1e6), unit: 'GB/s' },
  ];
}

const POST = { F: 17, H: 8, W: 8, C: 576, heads: 9, s: 2 };
const PRE = { H: 32, W: 32, C: 768, heads: 12, s: 2 };
// The projected variants run 4 C×C matmuls (K and V over every token): few iterations on CPU adapters.
// (Pre-connector with projections — 2·17·1024·768² MACs — is left out: minutes per iteration there.)
const SLOW = { warmup: 1, iters: 3, batch: 1 };

const SHAPES: Shape[] = [
  { label: 'post-connector 17x8x8x576 s2 h9 param-free (row)', ...POST, variant: 'row' },
  // The workgroup kernel is for GPUs; on CPU adapters its barriers cost ~ms per workgroup: few iterations.
  { label: 'post-connector 17x8x8x576 s2 h9 param-free (workgroup)', ...POST, variant: 'workgroup', iters: SLOW },
  { label: 'post-connector 17x8x8x576 s2 h9 +QKVO f32 +res', ...POST, proj: 'f32', iters: SLOW },
  { label: 'post-connector 17x8x8x576 s2 h9 +QKVO int4 +res', ...POST, proj: 'int4', iters: SLOW },
  { label: 'pre-connector 17x32x32x768 s2 h12 param-free (row)', F: 17, ...PRE, variant: 'row', iters: { warmup: 1, iters: 5, batch: 2 } },
  { label: 'pre-connector 1x32x32x768 s2 h12 param-free (workgroup)', F: 1, ...PRE, variant: 'workgroup', iters: SLOW },
];

export const benches: Bench[] = SHAPES.map((sh) => ({
  name: `compress ${sh.label}`,
  run: ({ gpu, log }) => measure(gpu, sh, log),
}));
