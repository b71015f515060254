/**
 * Prefill / vision-encoder GEMM throughput at SmolVLM-256M's vision shapes (M tokens × N out × K in): one
 * 512-px frame is 1024 tokens; q/k/v/o are 768→768, fc1 768→3072, fc2 3072→768. int4 weights (what models
 * load by default) and the f32 matmul, in GFLOP/s (2·M·N·K per product). Each output is checked against an f64
 * reference on a few sampled rows before it is timed. On CPU adapters only the smallest shape runs (seconds
 * each). The vision tower spends most of an image's encode time in these products.
 */
import { chooseTile, int4Gemm } from '../src/kernels/int4_gemm.ts';
import { matmul } from '../src/kernels/matmul.ts';
import { dequantizeInt4, quantizeInt4, uploadInt4 } from '../src/kernels/int4.ts';
import { readF32, upload } from '../src/gpu/io.ts';
import { randomF32 } from '../tests/harness/check.ts';
import { timeKernel } from './timing.ts';
import type { Bench, BenchResult } from './types.ts';

const SHAPES: Array<[number, number, number]> = [
  [1024, 768, 768],
  [1024, 3072, 768],
  [1024, 768, 3072],
  [4096, 768, 768],
  [4096, 3072, 768],
  [8192, 768, 3072],
];

/** Max |Δ| over sampled rows of C = A·Bᵀ, relative to max |C| on them. */
function sampledError(got: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number): number {
  let maxErr = 0, maxRef = 0;
  for (const m of [0, 1, M >> 1, M - 1]) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[n * K + k];
      maxErr = Math.max(maxErr, Math.abs(got[m * N + n] - s));
      maxRef = Math.max(maxRef, Math.abs(s));
    }
  }
  return maxErr / maxRef;
}

export const benches: Bench[] = [
  {
    name: 'gemm at vision-encoder shapes',
    async run({ gpu, log }) {
      const out: BenchResult[] = [];
      const shapes = gpu.caps.software ? SHAPES.slice(0, 1).map(([, N, K]) => [128, N, K] as [number, number, number]) : SHAPES;
      log(`int4_gemm default at these shapes: ${shapes.map(([M, N]) => chooseTile(gpu, M, N)).join(', ')}`);
      for (const [M, N, K] of shapes) {
        const af = randomF32(M * K, M + K), bf = randomF32(N * K, N * 7 + K);
        const q = quantizeInt4(bf, N, K, { group: 32, scaleType: 'f16' });
        const w = uploadInt4(gpu, q);
        const a = upload(gpu, af), b = upload(gpu, bf), y = gpu.allocator.create(M * N * 4);
        const flop = 2 * M * N * K;
        const runs: Array<[string, (rec: Parameters<Parameters<typeof timeKernel>[1]>[0]) => void, Float32Array]> = [
          ['int4_gemm/tile64', (rec) => int4Gemm(gpu, rec, { a, w, out: y, M, variant: 'tile64' }), dequantizeInt4(q)],
          ['int4_gemm/tile128', (rec) => int4Gemm(gpu, rec, { a, w, out: y, M, variant: 'tile128' }), dequantizeInt4(q)],
          [`matmul/${gpu.variants.matmul} f32`, (rec) => matmul(gpu, rec, { a, b, out: y, M, N, K }), bf],
        ];
        for (const [name, record, ref] of runs) {
          const rec = gpu.recorder('gemm-check');
          record(rec);
          rec.submit();
          rec.destroy();
          const err = sampledError(await readF32(gpu, y, M * N), af, ref, M, N, K);
          if (!(err < 1e-4)) throw new Error(`${name} ${M}x${N}x${K}: relative error ${err} vs the reference`);
          const t = await timeKernel(gpu, record, gpu.caps.software ? { warmup: 1, iters: 3, batch: 1 } : { warmup: 3, iters: 9, batch: 8 });
          out.push({ name: `${name} ${M}x${N}x${K}`, value: flop / (t.ms * 1e6), unit: 'GFLOP/s' });
          log(`${name} ${M}x${N}x${K}: ${t.ms.toFixed(3)} ms, ${(flop / (t.ms * 1e6)).toFixed(0)} GFLOP/s, error ${err.toExponential(1)}`);
        }
        for (const x of [a, b, y, w.packed as GPUBuffer, w.scales as GPUBuffer]) gpu.allocator.destroy(x);
      }
      return out;
    },
  },
];
