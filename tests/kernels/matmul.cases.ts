/** Tiled f32 matmul vs an f64 reference on ragged shapes (not multiples of the 64×64×16 tile). */
import { matmul } from '../../src/kernels/matmul.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';


export function matmulRef(a: Float32Array, b: Float32Array, bias: Float32Array | null, M: number, N: number, K: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[n * K + k];
      c[m * N + n] = s;
    }
  return c;
}

async function check({ gpu, log }: CaseContext, M: number, N: number, K: number, withBias: boolean, seed: number) {
  const a = randomF32(M * K, seed), b = randomF32(N * K, seed + 1), bias = withBias ? randomF32(N, seed + 2) : null;
  const ab = upload(gpu, a), bb = upload(gpu, b), biasb = bias ? upload(gpu, bias) : undefined;
  const out = gpu.allocator.create(M * N * 4);
  const rec = gpu.recorder();
  matmul(gpu, rec, { a: ab, b: bb, bias: biasb, out, M, N, K });
  rec.submit();
  const got = await readF32(gpu, out, M * N);
  // f32 accumulation of K products of values in [-1,1): error grows ~ sqrt(K)·eps·|terms|.
  const s = assertClose(`matmul ${M}x${N}x${K}`, got, matmulRef(a, b, bias, M, N, K), { atol: 1e-5 * Math.sqrt(K) * 4, rtol: 1e-5 });
  log(`matmul M=${M} N=${N} K=${K}${withBias ? ' +bias' : ''}: ${fmtStats(s)}`);
  for (const x of [ab, bb, biasb, out]) if (x) gpu.allocator.destroy(x);
}

export const cases = defineCases([
  { name: 'exact tile 64x64x16', run: (c) => check(c, 64, 64, 16, false, 1) },
  { name: 'ragged 1x1x1', run: (c) => check(c, 1, 1, 1, false, 2) },
  { name: 'ragged 67x45x33 with bias', run: (c) => check(c, 67, 45, 33, true, 3) },
  { name: 'ragged 130x193x77', run: (c) => check(c, 130, 193, 77, false, 4) },
  { name: 'tall 257x9x300 with bias', run: (c) => check(c, 257, 9, 300, true, 5) },
  { name: 'SmolVLM-ish 70x576x192', run: (c) => check(c, 70, 576, 192, true, 6) },
  {
    name: 'rejects bad shapes before dispatch',
    async run({ gpu }) {
      const small = gpu.allocator.create(16);
      const rec = gpu.recorder();
      await expectReject('buffer too small', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 4, N: 4, K: 4 }), 'BufferTooSmall');
      await expectReject('zero K', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 1, N: 1, K: 0 }), 'ShapeMismatch');
      await expectReject('fractional M', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 1.5, N: 1, K: 1 }), 'ShapeMismatch');
      if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
      gpu.allocator.destroy(small);
    },
  },
]);
