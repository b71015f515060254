/**
 * int4 GEMM binding for prefill: C[M,N] = A[M,K] · dequant(W)ᵀ (+ bias), any M (f32 accumulation).
 * Shader: shaders/int4_gemm.wgsl; weight format: ./int4.ts. For M ≤ 4 the GEMV (./int4_gemv.ts) is faster.
 */
import source from '../../shaders/int4_gemm.wgsl?raw';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';
import { checkInt4Weights, INT4_BLOCK, type Int4GpuWeights } from './int4.ts';
import { WebVLMError } from '../errors.ts';

export interface Int4GemmArgs {
  a: Binding;
  w: Int4GpuWeights;
  bias?: Binding;
  out: Binding;
  M: number;
}

export function int4Gemm(gpu: GpuContext, rec: Recorder, args: Int4GemmArgs): void {
  const { M, w } = args;
  const layout = checkInt4Weights('int4Gemm', w);
  const { N, K } = w;
  requireDims('int4Gemm', { M });
  requireBytes('int4Gemm', 'a', args.a, M * K * 4);
  if (args.bias) requireBytes('int4Gemm', 'bias', args.bias, N * 4);
  requireBytes('int4Gemm', 'out', args.out, M * N * 4);
  const max = gpu.caps.limits.maxComputeWorkgroupsPerDimension;
  if (ceilDiv(M, 64) > max || ceilDiv(N, 64) > max) {
    throw new WebVLMError('ShapeMismatch', `int4Gemm: ${M}x${N} needs more than ${max} 64-wide tiles in one dimension.`);
  }
  const pipeline = gpu.pipelines.get({
    name: 'int4_gemm',
    source,
    constants: { BLOCKS_PER_GROUP: w.group / INT4_BLOCK, SCALE_F16: w.scaleType === 'f16' ? 1 : 0 },
  });
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0, layout.blocks, layout.scaleStride]));
  rec.dispatch(
    pipeline,
    [args.a, w.packed, w.scales, args.bias ?? dummy(gpu), args.out, params],
    [ceilDiv(N, 64), ceilDiv(M, 64)],
    `int4_gemm ${M}x${N}x${K} g${w.group} ${w.scaleType}`,
  );
}
