/**
 * int4 GEMV (decode) vs an f64 reference on the dequantized weights (kernel error, tight tolerance), with
 * the quantization error against the unquantized W·x logged separately. Every variant (row, workgroup
 * with and without subgroups, several rows×lanes shapes so both subgroup reduction paths run on 4- and
 * 8-wide subgroups), ragged N and K, groups 32/64/128, f32 and f16 scales, fused (concatenated) rows.
 */
import { int4Gemv, workgroupShape } from '../../src/kernels/int4_gemv.ts';
import { concatInt4Rows, dequantizeInt4F64, quantizeInt4, uploadInt4, type Int4Group, type Int4Matrix, type Int4ScaleType } from '../../src/kernels/int4.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, compare, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext, type KernelCase } from '../harness/cases.ts';

/** Y = X · dequant(W)ᵀ (+ bias) in f64 from the stored q and scales. */
export function int4Ref(x: Float32Array, m: Int4Matrix, bias: Float32Array | null, M: number): Float64Array {
  const w = dequantizeInt4F64(m);
  return denseRef(x, w, bias, M, m.N, m.K);
}

export function denseRef(x: Float32Array, w: ArrayLike<number>, bias: Float32Array | null, M: number, N: number, K: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let r = 0; r < M; r++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      y[r * N + n] = s;
    }
  return y;
}

/**
 * Kernel tolerance: |q·s| ≤ 1 here (weights in [-1, 1)), f32 accumulation of K products: the error grows
 * ~ √K · eps · |terms|, as for the f32 GEMV. Measured errors are logged (typically ~10× below this).
 */
export const kernelTol = (K: number) => ({ atol: 4e-5 * Math.sqrt(K), rtol: 1e-5 });

type Variant = { variant: 'row' | 'workgroup'; subgroups: boolean; rows?: number; lanes?: number; shapes?: 'all' | 'some' | 'one' };

async function check({ gpu, log }: CaseContext, v: Variant, M: number, N: number, K: number, group: Int4Group, scaleType: Int4ScaleType, withBias: boolean, seed: number) {
  const wf = randomF32(N * K, seed + 1);
  const q = quantizeInt4(wf, N, K, { group, scaleType });
  const x = randomF32(M * K, seed), bias = withBias ? randomF32(N, seed + 2) : null;
  const w = uploadInt4(gpu, q);
  const xb = upload(gpu, x), biasb = bias ? upload(gpu, bias) : undefined;
  const out = gpu.allocator.create(M * N * 4);
  const rec = gpu.recorder();
  int4Gemv(gpu, rec, { x: xb, w, bias: biasb, out, M, ...v });
  rec.submit();
  const got = await readF32(gpu, out, M * N);
  const shape = v.rows ? { rows: v.rows, lanes: v.lanes } : workgroupShape(N, q.blocks);
  const name = `${v.variant}${v.subgroups ? '+sg' : ''}${v.variant === 'workgroup' ? ` ${shape.rows}x${shape.lanes}` : ''} M=${M} N=${N} K=${K} g${group} ${scaleType}`;
  const ref = int4Ref(x, q, bias, M);
  const s = assertClose(`int4 gemv ${name}`, got, ref, kernelTol(K));
  const quant = compare(ref, denseRef(x, wf, bias, M, N, K));
  log(`int4_gemv/${name}: kernel ${fmtStats(s)}; quantization (vs unquantized W) relL2 ${quant.relL2.toExponential(2)}`);
  for (const b of [xb, w.packed, w.scales, biasb, out]) if (b) gpu.allocator.destroy(b as GPUBuffer);
}

const variants: Array<Variant & { needs?: KernelCase['needs'] }> = [
  { variant: 'row', subgroups: false },
  // Fixed rows×lanes here (each shape compiles a pipeline: seconds on SwiftShader); the default shape below.
  { variant: 'workgroup', subgroups: false, rows: 16, lanes: 16 },
  { variant: 'workgroup', subgroups: false, rows: 8, lanes: 32, shapes: 'some' },
  { variant: 'workgroup', subgroups: false, shapes: 'one' },
  // 16 lanes per row > the subgroup (4 on SwiftShader, 8 on lavapipe): partial sums meet in workgroup memory.
  { variant: 'workgroup', subgroups: true, rows: 16, lanes: 16, needs: ['subgroups'] },
  { variant: 'workgroup', subgroups: true, shapes: 'one', needs: ['subgroups'] },
  // 2 or 4 lanes per row ≤ the subgroup: the shuffle butterfly alone reduces a row (the real-GPU path).
  { variant: 'workgroup', subgroups: true, rows: 64, lanes: 4, shapes: 'some', needs: ['subgroups'] },
  { variant: 'workgroup', subgroups: true, rows: 32, lanes: 2, shapes: 'some', needs: ['subgroups'] },
];
const shapes: Array<[number, number, number, Int4Group, Int4ScaleType, boolean]> = [
  [1, 1, 1, 32, 'f32', false],
  [1, 37, 45, 32, 'f16', true],
  [3, 129, 97, 64, 'f32', false],
  [4, 70, 300, 128, 'f16', true],
  [2, 33, 2100, 32, 'f16', false], // K beyond one staged chunk (M=2: 1536 values per chunk), ragged tail
  [1, 300, 576, 32, 'f16', true],
];
// Extra rows×lanes shapes run a subset (each group/scale pair compiles a pipeline: seconds on SwiftShader).
const SOME = new Set([3, 4, 5]);
const ONE = new Set([5]);

export const cases = defineCases([
  ...variants.flatMap((v) =>
    shapes.flatMap(([M, N, K, group, st, bias], i): KernelCase[] => (v.shapes === 'some' && !SOME.has(i)) || (v.shapes === 'one' && !ONE.has(i)) ? [] : [{
      name: `${v.variant}${v.subgroups ? '+subgroups' : ''}${v.rows ? ` ${v.rows}x${v.lanes}` : v.variant === 'workgroup' ? ' default shape' : ''} M${M} N${N} K${K} g${group} ${st}${bias ? ' +bias' : ''}`,
      needs: v.needs,
      node: i === shapes.length - 1 || i === 3,
      run: (c) => check(c, v, M, N, K, group, st, bias, 200 + i),
    }]),
  ),
  {
    name: 'fused QKV: concatenated rows, one GEMV',
    node: true,
    async run({ gpu, log }) {
      const K = 96, Ns = [64, 32, 32], M = 2;
      const parts = Ns.map((N, i) => ({ N, wf: randomF32(N * K, 40 + i) }));
      const qs = parts.map((p) => quantizeInt4(p.wf, p.N, K, { group: 64, scaleType: 'f16' }));
      const fused = concatInt4Rows(qs);
      const x = randomF32(M * K, 7);
      const w = uploadInt4(gpu, fused), xb = upload(gpu, x), out = gpu.allocator.create(M * fused.N * 4);
      const rec = gpu.recorder();
      int4Gemv(gpu, rec, { x: xb, w, out, M });
      rec.submit();
      const got = await readF32(gpu, out, M * fused.N);
      // Reference: each projection on its own, columns placed side by side.
      const ref = new Float64Array(M * fused.N);
      let col = 0;
      qs.forEach((q) => {
        const r = int4Ref(x, q, null, M);
        for (let m = 0; m < M; m++) for (let n = 0; n < q.N; n++) ref[m * fused.N + col + n] = r[m * q.N + n];
        col += q.N;
      });
      const s = assertClose('fused qkv', got, ref, kernelTol(K));
      log(`int4_gemv fused QKV (${Ns.join('+')})x${K} M=${M} (${gpu.variants.gemv}): ${fmtStats(s)}`);
      for (const b of [w.packed, w.scales, xb, out]) gpu.allocator.destroy(b as GPUBuffer);
    },
  },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(1024);
      const w = { packed: b, scales: b, N: 8, K: 32, group: 32 as Int4Group, scaleType: 'f32' as Int4ScaleType };
      const rec = gpu.recorder();
      await expectReject('M=5', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 5 }), 'ShapeMismatch');
      await expectReject('M=0', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 0 }), 'ShapeMismatch');
      await expectReject('K=0', () => int4Gemv(gpu, rec, { x: b, w: { ...w, K: 0 }, out: b, M: 1 }), 'ShapeMismatch');
      await expectReject('group 16', () => int4Gemv(gpu, rec, { x: b, w: { ...w, group: 16 as Int4Group }, out: b, M: 1 }), 'InvalidArgument');
      await expectReject('scaleType bf16', () => int4Gemv(gpu, rec, { x: b, w: { ...w, scaleType: 'bf16' as Int4ScaleType }, out: b, M: 1 }), 'InvalidArgument');
      await expectReject('short packed', () => int4Gemv(gpu, rec, { x: b, w: { ...w, N: 100 }, out: b, M: 1 }), 'BufferTooSmall');
      const small = gpu.allocator.create(16);
      await expectReject('short x', () => int4Gemv(gpu, rec, { x: small, w, out: b, M: 1 }), 'BufferTooSmall');
      await expectReject('short out', () => int4Gemv(gpu, rec, { x: b, w, out: small, M: 1 }), 'BufferTooSmall');
      await expectReject('short bias', () => int4Gemv(gpu, rec, { x: b, w, bias: small, out: b, M: 1 }), 'BufferTooSmall');
      await expectReject('rows·lanes 512', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 1, variant: 'workgroup', rows: 32, lanes: 16 }), 'InvalidArgument');
      await expectReject('lanes 3', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 1, variant: 'workgroup', lanes: 3 }), 'InvalidArgument');
      await expectReject('variant', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 1, variant: 'tiled' as 'row' }), 'InvalidArgument');
      if (!gpu.caps.subgroups) {
        await expectReject('subgroups', () => int4Gemv(gpu, rec, { x: b, w, out: b, M: 1, variant: 'workgroup', subgroups: true }), 'UnsupportedFeature');
      }
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(small);
    },
  },
]);
