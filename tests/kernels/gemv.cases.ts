/** f32 GEMV (decode) vs an f64 reference: every variant, ragged N and K, 1–4 activation rows. */
import { gemv } from '../../src/kernels/gemv.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';
import type { KernelCase } from '../harness/cases.ts';
import { matmulRef } from './matmul.cases.ts';

type Variant = { variant: 'row' | 'workgroup'; subgroups: boolean };

async function check({ gpu, log }: CaseContext, v: Variant, M: number, N: number, K: number, withBias: boolean, seed: number) {
  const x = randomF32(M * K, seed), w = randomF32(N * K, seed + 1), bias = withBias ? randomF32(N, seed + 2) : null;
  const xb = upload(gpu, x), wb = upload(gpu, w), biasb = bias ? upload(gpu, bias) : undefined;
  const out = gpu.allocator.create(M * N * 4);
  const rec = gpu.recorder();
  gemv(gpu, rec, { x: xb, w: wb, bias: biasb, out, M, N, K, ...v });
  rec.submit();
  const got = await readF32(gpu, out, M * N);
  const s = assertClose(`gemv ${v.variant}${v.subgroups ? '+sg' : ''} ${M}x${N}x${K}`, got, matmulRef(x, w, bias, M, N, K), { atol: 1e-5 * Math.sqrt(K) * 4, rtol: 1e-5 });
  log(`gemv/${v.variant}${v.subgroups ? '+subgroups' : ''} M=${M} N=${N} K=${K}: ${fmtStats(s)}`);
  for (const b of [xb, wb, biasb, out]) if (b) gpu.allocator.destroy(b);
}

const variants: Array<Variant & { needs?: KernelCase['needs'] }> = [
  { variant: 'row', subgroups: false },
  { variant: 'workgroup', subgroups: false },
  { variant: 'workgroup', subgroups: true, needs: ['subgroups'] },
];
const shapes: Array<[number, number, number, boolean]> = [
  [1, 1, 1, false],
  [1, 37, 45, true],
  [3, 129, 33, false],
  [4, 200, 576, true],
  [1, 1536, 577, false],
];

export const cases = defineCases([
  ...variants.flatMap((v) =>
    shapes.map(([M, N, K, bias], i): KernelCase => ({
      name: `${v.variant}${v.subgroups ? '+subgroups' : ''} M${M} N${N} K${K}${bias ? ' +bias' : ''}`,
      needs: v.needs,
      node: i === shapes.length - 1,
      run: (c) => check(c, v, M, N, K, bias, 100 + i),
    })),
  ),
  {
    name: 'rejects M > 4 and short buffers',
    async run({ gpu }) {
      const b = gpu.allocator.create(64);
      const rec = gpu.recorder();
      await expectReject('M=5', () => gemv(gpu, rec, { x: b, w: b, out: b, M: 5, N: 1, K: 1 }), 'ShapeMismatch');
      await expectReject('short w', () => gemv(gpu, rec, { x: b, w: b, out: b, M: 1, N: 8, K: 8 }), 'BufferTooSmall');
      if (rec.dispatchCount !== 0) throw new Error('a dispatch was recorded');
      gpu.allocator.destroy(b);
    },
  },
]);
