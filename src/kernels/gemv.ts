/** f32 GEMV binding for decode: Y[M,N] = X[M,K] · W[N,K]ᵀ (+ bias), M ≤ 4. Shader: shaders/gemv.wgsl. */
import source from '../../shaders/gemv.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, grid, requireBytes, requireDims } from './common.ts';

export const GEMV_MAX_ROWS = 4;

export interface GemvArgs {
  x: Binding;
  w: Binding;
  bias?: Binding;
  out: Binding;
  M: number;
  N: number;
  K: number;
  /** Force a variant (tests, benchmarks); default: the adapter's choice. */
  variant?: 'row' | 'workgroup';
  subgroups?: boolean;
}

export function gemv(gpu: GpuContext, rec: Recorder, args: GemvArgs): void {
  const { M, N, K } = args;
  requireDims('gemv', { M, N, K });
  if (M > GEMV_MAX_ROWS) throw new WebVLMError('ShapeMismatch', `gemv: M=${M} rows; at most ${GEMV_MAX_ROWS} (use matmul for prefill).`);
  requireBytes('gemv', 'x', args.x, M * K * 4);
  requireBytes('gemv', 'w', args.w, N * K * 4);
  if (args.bias) requireBytes('gemv', 'bias', args.bias, N * 4);
  requireBytes('gemv', 'out', args.out, M * N * 4);
  const variant = args.variant ?? gpu.variants.gemv;
  const subgroups = (args.subgroups ?? gpu.variants.subgroups) && variant === 'workgroup';
  if (subgroups && !gpu.caps.subgroups) throw new WebVLMError('UnsupportedFeature', 'gemv: subgroups requested but the device lacks them.');
  const pipeline = gpu.pipelines.get({ name: 'gemv', source, entryPoint: variant === 'row' ? 'main_row' : 'main_workgroup', defines: { SUBGROUPS: subgroups } });
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0]));
  const workgroups = variant === 'row' ? ceilDiv(N, 64) : ceilDiv(N, 8);
  rec.dispatch(pipeline, [args.x, args.w, args.bias ?? dummy(gpu), args.out, params], grid(gpu, workgroups), `gemv/${variant}${subgroups ? '+sg' : ''} ${M}x${N}x${K}`);
}
