/**
 * int4 GEMV binding for decode: Y[M,N] = X[M,K] · dequant(W)ᵀ (+ bias), M ≤ 4, f32 accumulation.
 * Shader: shaders/int4_gemv.wgsl; weight format: ./int4.ts. Fused projections (QKV, gate+up) are one call
 * on weights whose rows were concatenated at load (`concatInt4Rows`): rows are independent.
 */
import source from '../../shaders/int4_gemv.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, grid, requireBytes, requireDims } from './common.ts';
import { checkInt4Weights, INT4_BLOCK, type Int4GpuWeights } from './int4.ts';

export const INT4_GEMV_MAX_ROWS = 4;
/** X values the workgroup variant stages per chunk (the shader's XS_VEC4 · 4). */
const XS_VALUES = 3072;

export interface Int4GemvArgs {
  x: Binding;
  w: Int4GpuWeights;
  bias?: Binding;
  out: Binding;
  M: number;
  /** Force a variant (tests, benchmarks); default: the adapter's choice. */
  variant?: 'row' | 'workgroup';
  subgroups?: boolean;
  /** Workgroup variant shape: output rows per workgroup and lanes per row (powers of two, product ≤ 256). */
  rows?: number;
  lanes?: number;
}

const isPow2 = (v: number) => Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0;
const nextPow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));

/**
 * Default rows × lanes of the workgroup variant (a heuristic for real GPUs, not yet measured on one):
 * about two 16-byte blocks per lane (8–64 lanes: each row's lanes read lanes·16 contiguous bytes), and
 * fewer rows per workgroup when N is small so that ≥ 128 workgroups fill a large GPU (64 invocations minimum).
 */
export function workgroupShape(N: number, blocks: number): { rows: number; lanes: number } {
  const lanes = Math.min(64, Math.max(8, nextPow2(Math.ceil(blocks / 2))));
  let rows = 256 / lanes;
  while (rows * lanes > 64 && Math.ceil(N / rows) < 128) rows /= 2;
  return { rows, lanes };
}

export function int4Gemv(gpu: GpuContext, rec: Recorder, args: Int4GemvArgs): void {
  const { M, w } = args;
  const layout = checkInt4Weights('int4Gemv', w);
  const { N, K } = w;
  requireDims('int4Gemv', { M });
  if (M > INT4_GEMV_MAX_ROWS) throw new WebVLMError('ShapeMismatch', `int4Gemv: M=${M} rows; at most ${INT4_GEMV_MAX_ROWS} (use int4Gemm for prefill).`);
  requireBytes('int4Gemv', 'x', args.x, M * K * 4);
  if (args.bias) requireBytes('int4Gemv', 'bias', args.bias, N * 4);
  requireBytes('int4Gemv', 'out', args.out, M * N * 4);
  const variant = args.variant ?? gpu.variants.gemv;
  if (variant !== 'row' && variant !== 'workgroup') throw new WebVLMError('InvalidArgument', `int4Gemv: unknown variant ${String(variant)}.`);
  const subgroups = (args.subgroups ?? gpu.variants.subgroups) && variant === 'workgroup';
  if (subgroups && !gpu.caps.subgroups) throw new WebVLMError('UnsupportedFeature', 'int4Gemv: subgroups requested but the device lacks them.');
  const shape = workgroupShape(N, layout.blocks);
  const rows = args.rows ?? shape.rows, lanes = args.lanes ?? shape.lanes;
  if (!isPow2(rows) || !isPow2(lanes) || rows * lanes > 256 || rows * lanes > gpu.caps.limits.maxComputeInvocationsPerWorkgroup) {
    throw new WebVLMError('InvalidArgument', `int4Gemv: rows=${rows}, lanes=${lanes}: powers of two with rows·lanes ≤ 256 (and the device limit).`);
  }
  const constants: Record<string, number> = { BLOCKS_PER_GROUP: w.group / INT4_BLOCK, SCALE_F16: w.scaleType === 'f16' ? 1 : 0 };
  if (variant === 'workgroup') Object.assign(constants, { ROWS: rows, LANES: lanes });
  const pipeline = gpu.pipelines.get({
    name: 'int4_gemv',
    source,
    entryPoint: variant === 'row' ? 'main_row' : 'main_workgroup',
    defines: { SUBGROUPS: subgroups },
    constants,
  });
  const chunkBlocks = Math.floor(XS_VALUES / INT4_BLOCK / M);
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0, layout.blocks, layout.scaleStride, chunkBlocks, 0]));
  const workgroups = variant === 'row' ? ceilDiv(N, 64) : ceilDiv(N, rows);
  rec.dispatch(
    pipeline,
    [args.x, w.packed, w.scales, args.bias ?? dummy(gpu), args.out, params],
    grid(gpu, workgroups),
    `int4_gemv/${variant}${subgroups ? '+sg' : ''} ${M}x${N}x${K} g${w.group} ${w.scaleType}`,
  );
}
