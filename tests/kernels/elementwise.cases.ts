/** Element-wise ops vs f64 references: every entry point, in place and out of place, ragged sizes, bad arguments. */
import { add, biasAdd, copy2d, gelu as geluExact, geluTanh, scale, siluMul } from '../../src/kernels/elementwise.ts';
import { erf } from '../reference/primitives-ref.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

export function geluTanhRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}
export const siluRef = (x: number) => x / (1 + Math.exp(-x));

// exp/division in f32 (WGSL exp: 3 + 2|x| ULP): a few 1e-7 relative; atol covers outputs near 0.
const ACT_TOL = { atol: 1e-6, rtol: 2e-6 };
// One f32 rounding per element (add, scale): half an ULP of the result.
const ONE_ROUNDING = { atol: 0, rtol: 6e-8 };

async function gelu({ gpu, log }: CaseContext, n: number, inPlace: boolean, seed: number) {
  // Values across the whole curve, including large |x| where a tanh formulation could overflow.
  const x = randomF32(n, seed, 8);
  x[0] = 60;
  if (n > 1) x[1] = -60;
  const xb = upload(gpu, x);
  const out = inPlace ? xb : gpu.allocator.create(n * 4);
  const rec = gpu.recorder();
  geluTanh(gpu, rec, { x: xb, out: inPlace ? undefined : out, n });
  rec.submit();
  const got = await readF32(gpu, out, n);
  const s = assertClose(`gelu_tanh n=${n}`, got, Array.from(x, geluTanhRef), ACT_TOL);
  log(`gelu_tanh${inPlace ? '/inplace' : ''} n=${n}: ${fmtStats(s)}`);
  gpu.allocator.destroy(xb);
  if (!inPlace) gpu.allocator.destroy(out);
}

export const geluRef = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

async function geluErf({ gpu, log }: CaseContext, n: number, inPlace: boolean, seed: number) {
  // The whole curve, both tails (where erfc(|z|) is tiny) and the small-|x| region.
  const x = randomF32(n, seed, 8);
  x[0] = 60;
  if (n > 1) x[1] = -60;
  if (n > 2) x[2] = 1e-4;
  const xb = upload(gpu, x);
  const out = inPlace ? xb : gpu.allocator.create(n * 4);
  const rec = gpu.recorder();
  geluExact(gpu, rec, { x: xb, out: inPlace ? undefined : out, n });
  rec.submit();
  const got = await readF32(gpu, out, n);
  // erfc fit (relative 1.2e-7) and WGSL exp (3 + 2|x| ULP) in f32: a few 1e-7 relative, as the tanh form.
  const s = assertClose(`gelu n=${n}`, got, Array.from(x, geluRef), ACT_TOL);
  log(`gelu${inPlace ? '/inplace' : ''} n=${n}: ${fmtStats(s)}`);
  gpu.allocator.destroy(xb);
  if (!inPlace) gpu.allocator.destroy(out);
}

async function siluMulCase({ gpu, log }: CaseContext, rows: number, I: number, fused: boolean, seed: number) {
  const gate = randomF32(rows * I, seed, 6), up = randomF32(rows * I, seed + 1, 2);
  const ref = new Float64Array(rows * I);
  for (let i = 0; i < rows * I; i++) ref[i] = siluRef(gate[i]) * up[i];
  const out = gpu.allocator.create(rows * I * 4);
  const rec = gpu.recorder();
  const bufs: GPUBuffer[] = [out];
  if (fused) {
    const gu = new Float32Array(rows * 2 * I);
    for (let r = 0; r < rows; r++) {
      gu.set(gate.subarray(r * I, (r + 1) * I), r * 2 * I);
      gu.set(up.subarray(r * I, (r + 1) * I), r * 2 * I + I);
    }
    const gub = upload(gpu, gu);
    bufs.push(gub);
    siluMul(gpu, rec, { gateUp: gub, out, rows, I });
  } else {
    const gb = upload(gpu, gate), ub = upload(gpu, up);
    bufs.push(gb, ub);
    siluMul(gpu, rec, { gate: gb, up: ub, out, rows, I });
  }
  rec.submit();
  const got = await readF32(gpu, out, rows * I);
  const s = assertClose(`silu_mul ${rows}x${I}`, got, ref, ACT_TOL);
  log(`silu_mul${fused ? '/fused' : ''} ${rows}x${I}: ${fmtStats(s)}`);
  for (const b of bufs) gpu.allocator.destroy(b);
}

async function addCase({ gpu, log }: CaseContext, n: number, mode: 'out' | 'inplace' | 'out=b', seed: number) {
  const a = randomF32(n, seed), b = randomF32(n, seed + 1);
  const ab = upload(gpu, a), bb = upload(gpu, b);
  const out = mode === 'out' ? gpu.allocator.create(n * 4) : mode === 'inplace' ? ab : bb;
  const rec = gpu.recorder();
  add(gpu, rec, { a: ab, b: bb, out: mode === 'inplace' ? undefined : out, n });
  rec.submit();
  const got = await readF32(gpu, out, n);
  const s = assertClose(`add ${mode} n=${n}`, got, Array.from(a, (v, i) => v + b[i]), ONE_ROUNDING);
  log(`add/${mode} n=${n}: ${fmtStats(s)}`);
  for (const x of new Set([ab, bb, out])) gpu.allocator.destroy(x);
}

async function addScaledCase({ gpu, log }: CaseContext, n: number, alpha: number, mode: 'out' | 'inplace', seed: number) {
  const a = randomF32(n, seed), b = randomF32(n, seed + 1);
  const ab = upload(gpu, a), bb = upload(gpu, b);
  const out = mode === 'out' ? gpu.allocator.create(n * 4) : ab;
  const rec = gpu.recorder();
  add(gpu, rec, { a: ab, b: bb, out: mode === 'inplace' ? undefined : out, n, alpha });
  rec.submit();
  const got = await readF32(gpu, out, n);
  const a32 = Math.fround(alpha);
  // α·b then + a: two f32 roundings (one if fused): one ULP of the result plus one of α·b.
  const s = assertClose(`add α=${alpha} ${mode} n=${n}`, got, Array.from(a, (v, i) => v + a32 * b[i]), { atol: 1e-7, rtol: 1.2e-7 });
  log(`add/${mode} α=${alpha} n=${n}: ${fmtStats(s)}`);
  for (const x of new Set([ab, bb, out])) gpu.allocator.destroy(x);
}

async function addColsCase({ gpu, log }: CaseContext, rows: number, cols: number, seed: number) {
  const a = randomF32(rows * cols, seed), b = randomF32(rows * cols, seed + 1), g = randomF32(cols, seed + 2, 0.5);
  const ab = upload(gpu, a), bb = upload(gpu, b), gb = upload(gpu, g);
  const rec = gpu.recorder();
  add(gpu, rec, { a: ab, b: bb, n: rows * cols, colScale: gb, cols });
  rec.submit();
  const got = await readF32(gpu, ab, rows * cols);
  const s = assertClose(`add cols ${rows}x${cols}`, got, Array.from(a, (v, i) => v + b[i] * g[i % cols]), { atol: 1e-7, rtol: 1.2e-7 });
  log(`add/cols ${rows}x${cols}: ${fmtStats(s)}`);
  for (const x of [ab, bb, gb]) gpu.allocator.destroy(x);
}

async function biasCase({ gpu, log }: CaseContext, rows: number, N: number, seed: number) {
  const x = randomF32(rows * N, seed), bias = randomF32(N, seed + 1);
  const xb = upload(gpu, x), bb = upload(gpu, bias);
  const rec = gpu.recorder();
  biasAdd(gpu, rec, { x: xb, bias: bb, rows, N });
  rec.submit();
  const got = await readF32(gpu, xb, rows * N);
  const s = assertClose(`bias_add ${rows}x${N}`, got, Array.from(x, (v, i) => v + bias[i % N]), ONE_ROUNDING);
  log(`bias_add ${rows}x${N}: ${fmtStats(s)}`);
  gpu.allocator.destroy(xb);
  gpu.allocator.destroy(bb);
}

async function scaleCase({ gpu, log }: CaseContext, n: number, alpha: number, inPlace: boolean, seed: number) {
  const x = randomF32(n, seed, 3);
  const xb = upload(gpu, x);
  const out = inPlace ? xb : gpu.allocator.create(n * 4);
  const rec = gpu.recorder();
  scale(gpu, rec, { x: xb, out: inPlace ? undefined : out, n, alpha });
  rec.submit();
  const got = await readF32(gpu, out, n);
  const a32 = Math.fround(alpha);
  const s = assertClose(`scale n=${n}`, got, Array.from(x, (v) => a32 * v), ONE_ROUNDING);
  log(`scale${inPlace ? '/inplace' : ''} n=${n} α=${alpha}: ${fmtStats(s)}`);
  gpu.allocator.destroy(xb);
  if (!inPlace) gpu.allocator.destroy(out);
}

async function copyCase({ gpu, log }: CaseContext, rows: number, cols: number, srcStride: number, dstStride: number, srcOffset: number, dstOffset: number) {
  const src = randomF32(srcOffset + rows * srcStride, 7);
  const dstInit = randomF32(dstOffset + rows * dstStride + 3, 8);
  const sb = upload(gpu, src), db = upload(gpu, dstInit);
  const rec = gpu.recorder();
  copy2d(gpu, rec, { src: sb, dst: db, rows, cols, srcStride, dstStride, srcOffset, dstOffset });
  rec.submit();
  const got = await readF32(gpu, db, dstInit.length);
  const ref = Float32Array.from(dstInit);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) ref[dstOffset + r * dstStride + c] = src[srcOffset + r * srcStride + c];
  assertClose(`copy2d ${rows}x${cols}`, got, ref, { atol: 0, rtol: 0 }); // a copy is exact, untouched elements too
  log(`copy2d ${rows}x${cols} strides ${srcStride}/${dstStride} offsets ${srcOffset}/${dstOffset}: exact`);
  gpu.allocator.destroy(sb);
  gpu.allocator.destroy(db);
}

export const cases = defineCases([
  { name: 'gelu_tanh out n=1', run: (c) => gelu(c, 1, false, 1) },
  { name: 'gelu_tanh out n=1000', run: (c) => gelu(c, 1000, false, 2) },
  { name: 'gelu_tanh inplace n=3075', node: true, run: (c) => gelu(c, 3075, true, 3) },
  { name: 'gelu (erf) out n=1', run: (c) => geluErf(c, 1, false, 31) },
  { name: 'gelu (erf) out n=1000', node: true, run: (c) => geluErf(c, 1000, false, 32) },
  { name: 'gelu (erf) inplace n=3075', run: (c) => geluErf(c, 3075, true, 33) },
  { name: 'silu_mul two buffers 3x37', run: (c) => siluMulCase(c, 3, 37, false, 4) },
  { name: 'silu_mul fused 5x301', node: true, run: (c) => siluMulCase(c, 5, 301, true, 5) },
  { name: 'silu_mul fused 1x1', run: (c) => siluMulCase(c, 1, 1, true, 6) },
  { name: 'add out n=777', run: (c) => addCase(c, 777, 'out', 7) },
  { name: 'add inplace n=1', run: (c) => addCase(c, 1, 'inplace', 8) },
  { name: 'add inplace n=2049', run: (c) => addCase(c, 2049, 'inplace', 9) },
  { name: 'add out=b n=300', run: (c) => addCase(c, 300, 'out=b', 10) },
  { name: 'add α=0.22 out n=777', node: true, run: (c) => addScaledCase(c, 777, 0.22, 'out', 34) },
  { name: 'add α=-1/3 inplace n=2049', run: (c) => addScaledCase(c, 2049, -1 / 3, 'inplace', 35) },
  { name: 'add ⊙ per-column scale 7x45 (layer scale)', node: true, run: (c) => addColsCase(c, 7, 45, 36) },
  { name: 'add ⊙ per-column scale 1x1', run: (c) => addColsCase(c, 1, 1, 37) },
  { name: 'bias_add 7x45', run: (c) => biasCase(c, 7, 45, 11) },
  { name: 'bias_add 1x1', run: (c) => biasCase(c, 1, 1, 12) },
  { name: 'scale out n=513', run: (c) => scaleCase(c, 513, 0.125, false, 13) },
  { name: 'scale inplace n=100', run: (c) => scaleCase(c, 100, -1 / 3, true, 14) },
  { name: 'copy2d contiguous 3x10', run: (c) => copyCase(c, 3, 10, 10, 10, 0, 0) },
  { name: 'copy2d strided slice 5x7 of 13 into 9 with offsets', run: (c) => copyCase(c, 5, 7, 13, 9, 3, 2) },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(64), c = gpu.allocator.create(64);
      const rec = gpu.recorder();
      await expectReject('n=0', () => geluTanh(gpu, rec, { x: b, n: 0 }), 'ShapeMismatch');
      await expectReject('short x', () => geluTanh(gpu, rec, { x: b, n: 17 }), 'BufferTooSmall');
      await expectReject('out aliases x at another range', () => geluTanh(gpu, rec, { x: { buffer: b, offset: 0, size: 32 }, out: { buffer: b, offset: 32, size: 32 }, n: 8 }), 'InvalidArgument');
      await expectReject('short gateUp', () => siluMul(gpu, rec, { gateUp: b, out: c, rows: 2, I: 5 }), 'BufferTooSmall');
      await expectReject('silu out = gate', () => siluMul(gpu, rec, { gate: b, up: c, out: b, rows: 1, I: 4 }), 'InvalidArgument');
      await expectReject('neither gate/up nor gateUp', () => siluMul(gpu, rec, { out: c, rows: 1, I: 4 } as never), 'InvalidArgument');
      await expectReject('add a = b in place', () => add(gpu, rec, { a: b, b, n: 4 }), 'InvalidArgument');
      await expectReject('add out = b with alpha', () => add(gpu, rec, { a: b, b: c, out: c, n: 4, alpha: 2 }), 'InvalidArgument');
      await expectReject('NaN add alpha', () => add(gpu, rec, { a: b, b: c, n: 4, alpha: NaN }), 'InvalidArgument');
      await expectReject('colScale rows ragged', () => add(gpu, rec, { a: b, b: c, n: 5, colScale: c, cols: 2 }), 'ShapeMismatch');
      await expectReject('colScale out of place', () => add(gpu, rec, { a: b, b: c, out: c, n: 4, colScale: c, cols: 2 }), 'InvalidArgument');
      await expectReject('short colScale', () => add(gpu, rec, { a: b, b: c, n: 16, colScale: { buffer: c, offset: 0, size: 4 }, cols: 16 }), 'BufferTooSmall');
      await expectReject('gelu n=0', () => geluExact(gpu, rec, { x: b, n: 0 }), 'ShapeMismatch');
      await expectReject('short bias', () => biasAdd(gpu, rec, { x: b, bias: c, rows: 1, N: 17 }), 'BufferTooSmall');
      await expectReject('NaN alpha', () => scale(gpu, rec, { x: b, n: 4, alpha: NaN }), 'InvalidArgument');
      await expectReject('stride < cols', () => copy2d(gpu, rec, { src: b, dst: c, rows: 2, cols: 4, srcStride: 3 }), 'ShapeMismatch');
      await expectReject('copy past dst end', () => copy2d(gpu, rec, { src: b, dst: c, rows: 2, cols: 4, dstOffset: 9 }), 'BufferTooSmall');
      await expectReject('copy onto itself', () => copy2d(gpu, rec, { src: b, dst: b, rows: 1, cols: 4, dstOffset: 4 }), 'InvalidArgument');
      await expectReject('negative offset', () => copy2d(gpu, rec, { src: b, dst: c, rows: 1, cols: 4, srcOffset: -1 }), 'ShapeMismatch');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(c);
    },
  },
]);
