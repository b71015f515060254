/**
 * f32 matmul vs an f64 reference on ragged shapes, both variants: 'tiled' (64×64×16 tiles) and 'register'
 * (4×4 blocks per invocation, 32×32 per workgroup); shapes are not multiples of either.
 */
import { matmul, type MatmulVariant } from '../../src/kernels/matmul.ts';
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

async function check({ gpu, log }: CaseContext, variant: MatmulVariant, M: number, N: number, K: number, withBias: boolean, seed: number) {
  const a = randomF32(M * K, seed), b = randomF32(N * K, seed + 1), bias = withBias ? randomF32(N, seed + 2) : null;
  const ab = upload(gpu, a), bb = upload(gpu, b), biasb = bias ? upload(gpu, bias) : undefined;
  const out = gpu.allocator.create(M * N * 4);
  const rec = gpu.recorder();
  matmul(gpu, rec, { a: ab, b: bb, bias: biasb, out, M, N, K, variant });
  rec.submit();
  const got = await readF32(gpu, out, M * N);
  // f32 accumulation of K products of values in [-1,1): error grows ~ sqrt(K)·eps·|terms|.
  const s = assertClose(`matmul ${M}x${N}x${K}`, got, matmulRef(a, b, bias, M, N, K), { atol: 1e-5 * Math.sqrt(K) * 4, rtol: 1e-5 });
  // The register variant reads vec4s along K when K % 4 = 0 (main_register4), scalars otherwise: shapes cover both.
  log(`matmul/${variant}${variant === 'register' ? (K % 4 === 0 ? ' (vec4 K)' : ' (scalar K)') : ''} M=${M} N=${N} K=${K}${withBias ? ' +bias' : ''}: ${fmtStats(s)}`);
  for (const x of [ab, bb, biasb, out]) if (x) gpu.allocator.destroy(x);
}

export const cases = defineCases([
  ...(['tiled', 'register'] as const).flatMap((v) => [
    { name: `${v}: exact tile 64x64x16`, run: (c: CaseContext) => check(c, v, 64, 64, 16, false, 1) },
    { name: `${v}: ragged 1x1x1`, run: (c: CaseContext) => check(c, v, 1, 1, 1, false, 2) },
    { name: `${v}: ragged 67x45x33 with bias`, node: v === 'register', run: (c: CaseContext) => check(c, v, 67, 45, 33, true, 3) },
    { name: `${v}: ragged 130x193x77`, run: (c: CaseContext) => check(c, v, 130, 193, 77, false, 4) },
    { name: `${v}: tall 257x9x300 with bias`, run: (c: CaseContext) => check(c, v, 257, 9, 300, true, 5) },
    { name: `${v}: SmolVLM-ish 70x576x192`, run: (c: CaseContext) => check(c, v, 70, 576, 192, true, 6) },
    { name: `${v}: 3x2x5 (smaller than one register block)`, run: (c: CaseContext) => check(c, v, 3, 2, 5, true, 7) },
  ]),
  {
    name: 'rejects bad shapes before dispatch',
    async run({ gpu }) {
      const small = gpu.allocator.create(16);
      const rec = gpu.recorder();
      await expectReject('buffer too small', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 4, N: 4, K: 4 }), 'BufferTooSmall');
      await expectReject('zero K', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 1, N: 1, K: 0 }), 'ShapeMismatch');
      await expectReject('fractional M', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 1.5, N: 1, K: 1 }), 'ShapeMismatch');
      await expectReject('unknown variant', () => matmul(gpu, rec, { a: small, b: small, out: small, M: 1, N: 1, K: 1, variant: 'naive' as never }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
      gpu.allocator.destroy(small);
    },
  },
]);
