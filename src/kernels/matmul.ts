/** Tiled f32 matmul binding: C[M,N] = A[M,K] · B[N,K]ᵀ (+ bias). Shader: shaders/matmul.wgsl. */
import source from '../../shaders/matmul.wgsl?raw';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';

export interface MatmulArgs {
  a: Binding;
  b: Binding;
  bias?: Binding;
  out: Binding;
  M: number;
  N: number;
  K: number;
}

export function matmul(gpu: GpuContext, rec: Recorder, args: MatmulArgs): void {
  const { M, N, K } = args;
  requireDims('matmul', { M, N, K });
  requireBytes('matmul', 'a', args.a, M * K * 4);
  requireBytes('matmul', 'b', args.b, N * K * 4);
  if (args.bias) requireBytes('matmul', 'bias', args.bias, N * 4);
  requireBytes('matmul', 'out', args.out, M * N * 4);
  const pipeline = gpu.pipelines.get({ name: 'matmul', source });
  const params = rec.uniform(new Uint32Array([M, N, K, args.bias ? 1 : 0]));
  rec.dispatch(pipeline, [args.a, args.b, args.bias ?? dummy(gpu), args.out, params], [ceilDiv(N, 64), ceilDiv(M, 64)], `matmul ${M}x${N}x${K}`);
}
