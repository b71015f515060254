/**
 * f32 matmul binding: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias). Shader: shaders/matmul.wgsl. Variants (default:
 * `gpu.variants.matmul`): 'tiled' (GPUs: 64×64 tiles through workgroup memory) and 'register' (CPU
 * adapters: a 4×4 register block per invocation, no barriers; vec4 loads along K when K % 4 = 0).
 */
import source from '../../shaders/matmul.wgsl?raw';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { WebVLMError } from '../errors.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';

export type MatmulVariant = 'tiled' | 'register';

export interface MatmulArgs {
  a: Binding;
  b: Binding;
  bias?: Binding;
  out: Binding;
  M: number;
  N: number;
  K: number;
  /** Force a variant (tests, benchmarks); default: the adapter's choice. */
  variant?: MatmulVariant;
}

export function matmul(gpu: GpuContext, rec: Recorder, args: MatmulArgs): void {
  const { M, N, K } = args;
  requireDims('matmul', { M, N, K });
  requireBytes('matmul', 'a', args.a, M * K * 4);
  requireBytes('matmul', 'b', args.b, N * K * 4);
  if (args.bias) requireBytes('matmul', 'bias', args.bias, N * 4);
  requireBytes('matmul', 'out', args.out, M * N * 4);
  const variant = args.variant ?? gpu.variants.matmul;
  if (variant !== 'tiled' && variant !== 'register') throw new WebVLMError('InvalidArgument', `matmul: unknown variant ${String(variant)}.`);
  // Both variants cover 64×64 (tiled) or 32×32 (register: 8×8 invocations × 4×4) outputs per workgroup.
  const tile = variant === 'tiled' ? 64 : 32;
  const wg: [number, number] = [ceilDiv(N, tile), ceilDiv(M, tile)];
  const max = gpu.caps.limits.maxComputeWorkgroupsPerDimension;
  if (wg[0] > max || wg[1] > max) throw new WebVLMError('ShapeMismatch', `matmul: ${M}x${N} needs more than ${max} ${tile}-wide tiles in one dimension.`);
  const pipeline = gpu.pipelines.get({ name: 'matmul', source, entryPoint: variant === 'tiled' ? 'main' : K % 4 === 0 ? 'main_register4' : 'main_register' });
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0]));
  rec.dispatch(pipeline, [args.a, args.b, args.bias ?? dummy(gpu), args.out, params], wg, `matmul/${variant} ${M}x${N}x${K}`);
}
