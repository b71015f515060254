/**
 * Outside check of the int4 format and kernels (Node): the same quantized weights, converted to
 * onnxruntime's MatMulNBits layout, run as a single-op ONNX model on onnxruntime-node (CPU, an
 * implementation nobody here wrote). Its output is compared with our f64 dequantized reference and, where
 * Node Dawn offers an adapter (lavapipe), with our GPU kernels directly.
 */
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildMatMulNBitsModel } from '../../bench/onnx-models.ts';
import { readF32, upload } from '../../src/gpu/io.ts';
import { quantizeInt4, toMatMulNBits, uploadInt4, type Int4Group, type Int4Matrix, type Int4ScaleType } from '../../src/kernels/int4.ts';
import { int4Gemm } from '../../src/kernels/int4_gemm.ts';
import { int4Gemv } from '../../src/kernels/int4_gemv.ts';
import { assertClose, fmtStats, randomF32 } from '../harness/check.ts';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { int4Ref, kernelTol } from './int4_gemv.cases.ts';

interface Case {
  M: number;
  N: number;
  K: number;
  group: Int4Group;
  scaleType: Int4ScaleType;
  bias: boolean;
}

const CASES: Case[] = [
  { M: 1, N: 48, K: 64, group: 32, scaleType: 'f32', bias: false },
  { M: 1, N: 96, K: 576, group: 32, scaleType: 'f16', bias: false }, // SmolVLM d_model
  { M: 3, N: 37, K: 77, group: 32, scaleType: 'f16', bias: true }, // K not a multiple of the block
  { M: 2, N: 20, K: 200, group: 64, scaleType: 'f32', bias: false },
  { M: 4, N: 33, K: 300, group: 128, scaleType: 'f16', bias: true },
  { M: 70, N: 65, K: 96, group: 32, scaleType: 'f16', bias: false }, // prefill: GEMM
];

const label = (c: Case) => `M${c.M} N${c.N} K${c.K} g${c.group} ${c.scaleType}${c.bias ? ' +bias' : ''}`;

async function runOrt(q: Int4Matrix, x: Float32Array, M: number, bias: Float32Array | null): Promise<Float32Array> {
  const { B, scales, blockSize } = toMatMulNBits(q);
  const bytes = buildMatMulNBitsModel({ N: q.N, K: q.K, blockSize, B, scales, bias: bias ?? undefined });
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  try {
    const out = await session.run({ A: new ort.Tensor('float32', x, [M, q.K]) });
    return out.Y.data as Float32Array;
  } finally {
    await session.release();
  }
}

function inputs(c: Case, seed: number) {
  const q = quantizeInt4(randomF32(c.N * c.K, seed + 1), c.N, c.K, { group: c.group, scaleType: c.scaleType });
  const x = randomF32(c.M * c.K, seed);
  const bias = c.bias ? randomF32(c.N, seed + 2) : null;
  return { q, x, bias };
}

describe('int4 vs onnxruntime-node MatMulNBits (CPU)', () => {
  CASES.forEach((c, i) => {
    test(`${label(c)}: ORT = f64 dequant reference`, async (t) => {
      const { q, x, bias } = inputs(c, 500 + i);
      const got = await runOrt(q, x, c.M, bias);
      // ORT's CPU kernel dequantizes to f32 and accumulates in f32: the same error model as our kernels.
      const s = assertClose(`ORT ${label(c)}`, got, int4Ref(x, q, bias, c.M), kernelTol(c.K));
      t.diagnostic(`ORT CPU vs f64 reference: ${fmtStats(s)}`);
    });
  });
});

describe('int4 GPU kernels vs onnxruntime-node MatMulNBits (Node Dawn)', () => {
  const dawn = useDawnContext();
  CASES.forEach((c, i) => {
    test(`${label(c)}: our GPU kernel = ORT`, async (t) => {
      const { gpu, why } = dawn;
      if (!gpu) return t.skip(`no Dawn adapter (${why}): compared with the reference only`);
      const { q, x, bias } = inputs(c, 500 + i);
      const ortY = await runOrt(q, x, c.M, bias);
      const w = uploadInt4(gpu, q), xb = upload(gpu, x), biasb = bias ? upload(gpu, bias) : undefined;
      const out = gpu.allocator.create(c.M * c.N * 4);
      const variants = c.M <= 4 ? (['row', 'workgroup'] as const) : (['gemm'] as const);
      for (const v of variants) {
        const rec = gpu.recorder();
        if (v === 'gemm') int4Gemm(gpu, rec, { a: xb, w, bias: biasb, out, M: c.M });
        else int4Gemv(gpu, rec, { x: xb, w, bias: biasb, out, M: c.M, variant: v, subgroups: v === 'workgroup' && gpu.caps.subgroups });
        rec.submit();
        const got = await readF32(gpu, out, c.M * c.N);
        // Two f32 implementations of the same sum: twice the single-kernel bound.
        const tol = kernelTol(c.K);
        const s = assertClose(`${v} vs ORT ${label(c)}`, got, ortY, { atol: 2 * tol.atol, rtol: 2 * tol.rtol });
        t.diagnostic(`int4 ${v} (lavapipe) vs ORT CPU: ${fmtStats(s)}`);
      }
      if (gpu.uncapturedErrors.length) throw new Error(`WebGPU errors: ${gpu.uncapturedErrors.join(' | ')}`);
      for (const b of [w.packed, w.scales, xb, biasb, out]) if (b) gpu.allocator.destroy(b as GPUBuffer);
    });
  });
});
