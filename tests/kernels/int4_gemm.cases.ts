/**
 * int4 GEMM (prefill) vs an f64 reference on the dequantized weights (kernel error), quantization error
 * against the unquantized A·Wᵀ logged separately. Ragged M, N, K (K not a multiple of 32 or of the group),
 * groups 32/64/128, f32 and f16 scales, bias.
 */
import { int4Gemm, type Int4GemmVariant } from '../../src/kernels/int4_gemm.ts';
import { quantizeInt4, uploadInt4, type Int4Group, type Int4ScaleType } from '../../src/kernels/int4.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, compare, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';
import { denseRef, int4Ref, kernelTol } from './int4_gemv.cases.ts';

async function check({ gpu, log }: CaseContext, M: number, N: number, K: number, group: Int4Group, scaleType: Int4ScaleType, withBias: boolean, seed: number, variant?: Int4GemmVariant) {
  const wf = randomF32(N * K, seed + 1);
  const q = quantizeInt4(wf, N, K, { group, scaleType });
  const a = randomF32(M * K, seed), bias = withBias ? randomF32(N, seed + 2) : null;
  const w = uploadInt4(gpu, q);
  const ab = upload(gpu, a), biasb = bias ? upload(gpu, bias) : undefined;
  const out = gpu.allocator.create(M * N * 4);
  const rec = gpu.recorder();
  int4Gemm(gpu, rec, { a: ab, w, bias: biasb, out, M, variant });
  rec.submit();
  const got = await readF32(gpu, out, M * N);
  const ref = int4Ref(a, q, bias, M);
  // Same bound as the GEMV: |q·s| ≤ 1, f32 accumulation over K (here of rounded q·s products).
  const s = assertClose(`int4 gemm ${M}x${N}x${K} g${group} ${scaleType}`, got, ref, kernelTol(K));
  const quant = compare(ref, denseRef(a, wf, bias, M, N, K));
  log(`int4_gemm${variant ? `/${variant}` : ''} M=${M} N=${N} K=${K} g${group} ${scaleType}${withBias ? ' +bias' : ''}: kernel ${fmtStats(s)}; quantization (vs unquantized W) relL2 ${quant.relL2.toExponential(2)}`);
  for (const b of [ab, w.packed, w.scales, biasb, out]) if (b) gpu.allocator.destroy(b as GPUBuffer);
}

export const cases = defineCases([
  { name: 'exact tile 64x64x32 g32 f32', run: (c) => check(c, 64, 64, 32, 32, 'f32', false, 1) },
  { name: 'ragged 1x1x1 g32 f16', run: (c) => check(c, 1, 1, 1, 32, 'f16', false, 2) },
  { name: 'ragged 67x45x33 g32 f16 +bias', node: true, run: (c) => check(c, 67, 45, 33, 32, 'f16', true, 3) },
  { name: 'ragged 130x93x200 g64 f32', run: (c) => check(c, 130, 93, 200, 64, 'f32', false, 4) },
  { name: 'tall 257x9x300 g128 f16 +bias', node: true, run: (c) => check(c, 257, 9, 300, 128, 'f16', true, 5) },
  { name: 'SmolVLM-ish 70x576x192 g32 f16 +bias', run: (c) => check(c, 70, 576, 192, 32, 'f16', true, 6) },
  // The 128×128 tile (GPUs): exact tiles, ragged edges in every dimension, half-blocks of K, groups and bias.
  { name: 'tile128 exact 128x128x64 g32 f16', run: (c) => check(c, 128, 128, 64, 32, 'f16', false, 7, 'tile128') },
  { name: 'tile128 ragged 131x200x45 g32 f32 +bias', node: true, run: (c) => check(c, 131, 200, 45, 32, 'f32', true, 8, 'tile128') },
  { name: 'tile128 ragged 257x65x300 g128 f16 +bias', run: (c) => check(c, 257, 65, 300, 128, 'f16', true, 9, 'tile128') },
  { name: 'tile128 ragged 1x1x1 g64 f16', run: (c) => check(c, 1, 1, 1, 64, 'f16', false, 10, 'tile128') },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(1024), small = gpu.allocator.create(16);
      const w = { packed: b, scales: b, N: 8, K: 32, group: 32 as Int4Group, scaleType: 'f32' as Int4ScaleType };
      const rec = gpu.recorder();
      await expectReject('M=0', () => int4Gemm(gpu, rec, { a: b, w, out: b, M: 0 }), 'ShapeMismatch');
      await expectReject('fractional M', () => int4Gemm(gpu, rec, { a: b, w, out: b, M: 1.5 }), 'ShapeMismatch');
      await expectReject('group 256', () => int4Gemm(gpu, rec, { a: b, w: { ...w, group: 256 as Int4Group }, out: b, M: 1 }), 'InvalidArgument');
      await expectReject('short scales', () => int4Gemm(gpu, rec, { a: b, w: { ...w, scales: small }, out: b, M: 1 }), 'BufferTooSmall');
      await expectReject('short a', () => int4Gemm(gpu, rec, { a: b, w, out: b, M: 9 }), 'BufferTooSmall');
      await expectReject('short out', () => int4Gemm(gpu, rec, { a: b, w, out: small, M: 2 }), 'BufferTooSmall');
      await expectReject('short bias', () => int4Gemm(gpu, rec, { a: b, w, bias: small, out: b, M: 1 }), 'BufferTooSmall');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(small);
    },
  },
]);
