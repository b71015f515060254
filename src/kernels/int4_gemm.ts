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
  /** Output tile: 'tile64' (64×64, 4×4 per invocation) or 'tile128' (128×128, 8×8). Default: see `chooseTile`. */
  variant?: Int4GemmVariant;
}

export type Int4GemmVariant = 'tile64' | 'tile128';

/**
 * 128×128 tiles do 4× the work per shared-memory read but make 4× fewer workgroups; on CPU adapters the
 * larger register block only adds spills. Used on GPUs once there are enough tiles to fill a big GPU.
 */
export function chooseTile(gpu: GpuContext, M: number, N: number): Int4GemmVariant {
  return !gpu.caps.software && ceilDiv(M, 128) * ceilDiv(N, 128) >= 96 ? 'tile128' : 'tile64';
}

export function int4Gemm(gpu: GpuContext, rec: Recorder, args: Int4GemmArgs): void {
  const { M, w } = args;
  const layout = checkInt4Weights('int4Gemm', w);
  const { N, K } = w;
  requireDims('int4Gemm', { M });
  requireBytes('int4Gemm', 'a', args.a, M * K * 4);
  if (args.bias) requireBytes('int4Gemm', 'bias', args.bias, N * 4);
  requireBytes('int4Gemm', 'out', args.out, M * N * 4);
  const variant = args.variant ?? chooseTile(gpu, M, N);
  const T = variant === 'tile128' ? 128 : 64;
  const max = gpu.caps.limits.maxComputeWorkgroupsPerDimension;
  if (ceilDiv(M, T) > max || ceilDiv(N, T) > max) {
    throw new WebVLMError('ShapeMismatch', `int4Gemm: ${M}x${N} needs more than ${max} ${T}-wide tiles in one dimension.`);
  }
  const pipeline = gpu.pipelines.get({
    name: 'int4_gemm',
    source,
    defines: { WIDE: variant === 'tile128' },
    constants: { BLOCKS_PER_GROUP: w.group / INT4_BLOCK, SCALE_F16: w.scaleType === 'f16' ? 1 : 0 },
  });
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0, layout.blocks, layout.scaleStride]));
  rec.dispatch(
    pipeline,
    [args.a, w.packed, w.scales, args.bias ?? dummy(gpu), args.out, params],
    [ceilDiv(N, T), ceilDiv(M, T)],
    `int4_gemm/${variant} ${M}x${N}x${K} g${w.group} ${w.scaleType}`,
  );
}
