/** Row softmax with temperature vs f64: both reductions, in place and out, ragged N up to a vocabulary. */
import { softmax } from '../../src/kernels/softmax.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext, type KernelCase } from '../harness/cases.ts';

export function softmaxRef(x: ArrayLike<number>, rows: number, N: number, T: number): Float64Array {
  const out = new Float64Array(rows * N);
  const t = Math.fround(T);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let i = 0; i < N; i++) m = Math.max(m, x[r * N + i] / t);
    let s = 0;
    for (let i = 0; i < N; i++) s += Math.exp(x[r * N + i] / t - m);
    for (let i = 0; i < N; i++) out[r * N + i] = Math.exp(x[r * N + i] / t - m) / s;
  }
  return out;
}

// Probabilities ≤ 1. exp(z) with |z| ≤ 2·scale/T carries (3 + 2|z|) ULP plus the rounding of z itself
// (|z|·2⁻²⁴), so relative error grows with the logit spread (≤ ~30 here): rtol 5e-6; atol 1e-9 for tiny p.
const TOL = { atol: 1e-9, rtol: 5e-6 };

async function check({ gpu, log }: CaseContext, rows: number, N: number, T: number, inPlace: boolean, subgroups: boolean, seed: number) {
  const x = randomF32(rows * N, seed, 8);
  if (N > 3) x[2] = -Infinity; // masked logit → probability 0
  const xb = upload(gpu, x);
  const out = inPlace ? xb : gpu.allocator.create(rows * N * 4);
  const rec = gpu.recorder();
  softmax(gpu, rec, { x: xb, out: inPlace ? undefined : out, rows, N, temperature: T, subgroups });
  rec.submit();
  const got = await readF32(gpu, out, rows * N);
  const s = assertClose(`softmax ${rows}x${N} T=${T}`, got, softmaxRef(x, rows, N, T), TOL);
  log(`softmax${subgroups ? '+subgroups' : ''}${inPlace ? '/inplace' : ''} ${rows}x${N} T=${T}: ${fmtStats(s)}`);
  gpu.allocator.destroy(xb);
  if (!inPlace) gpu.allocator.destroy(out);
}

const shapes: Array<[number, number, number, boolean]> = [
  [1, 1, 1, false],
  [3, 1000, 0.7, false],
  [2, 49280, 1, true],
  [5, 37, 1.5, true],
];

export const cases = defineCases([
  ...[false, true].flatMap((sg) =>
    shapes.map(([rows, N, T, inPlace], i): KernelCase => ({
      name: `${sg ? 'subgroups ' : ''}${rows}x${N} T=${T}${inPlace ? ' in place' : ''}`,
      needs: sg ? ['subgroups'] : undefined,
      node: i === 1,
      run: (c) => check(c, rows, N, T, inPlace, sg, 40 + i),
    })),
  ),
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(64), o = gpu.allocator.create(64);
      const rec = gpu.recorder();
      await expectReject('T=0', () => softmax(gpu, rec, { x: b, rows: 1, N: 4, temperature: 0 }), 'InvalidArgument');
      await expectReject('T=NaN', () => softmax(gpu, rec, { x: b, rows: 1, N: 4, temperature: NaN }), 'InvalidArgument');
      await expectReject('N=0', () => softmax(gpu, rec, { x: b, rows: 1, N: 0 }), 'ShapeMismatch');
      await expectReject('short out', () => softmax(gpu, rec, { x: b, out: gpu.allocator.create(4), rows: 1, N: 16 }), 'BufferTooSmall');
      await expectReject('out aliases x elsewhere', () => softmax(gpu, rec, { x: { buffer: b, offset: 0, size: 16 }, out: { buffer: b, offset: 32, size: 16 }, rows: 1, N: 4 }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(o);
    },
  },
]);
