/** f32 GEMV (both variants) at SmolVLM decode shapes: GB/s of weight traffic. */
import { gemv } from '../src/kernels/gemv.ts';
import { upload } from '../src/gpu/io.ts';
import { randomF32 } from '../tests/harness/check.ts';
import { timeKernel } from './timing.ts';
import type { Bench } from './types.ts';

const SHAPES: Array<[number, number]> = [
  [576, 1536],
  [1536, 576],
];

export const benches: Bench[] = [
  {
    name: 'f32 gemv',
    async run({ gpu }) {
      const out = [];
      for (const [K, N] of SHAPES) {
        const x = upload(gpu, randomF32(K, 1)), w = upload(gpu, randomF32(N * K, 2));
        const y = gpu.allocator.create(N * 4);
        for (const variant of ['row', 'workgroup'] as const) {
          const t = await timeKernel(gpu, (rec) => gemv(gpu, rec, { x, w, out: y, M: 1, N, K, variant, subgroups: false }));
          out.push({ name: `f32 gemv/${variant} ${K}→${N}`, value: (N * K * 4) / (t.ms * 1e6), unit: 'GB/s' });
        }
        for (const b of [x, w, y]) gpu.allocator.destroy(b);
      }
      return out;
    },
  },
];
