/**
 * Row softmax with temperature (shaders/softmax.wgsl): y[r, :] = softmax(x[r, :] / T), f32, one workgroup
 * per row (any N). In place when `out` is absent or the same binding as x. Used for sampling probabilities
 * (the sampling kernel folds its own softmax in; this one is for callers that want the distribution).
 */
import source from '../../shaders/softmax.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { grid, requireBytes, requireDims } from './common.ts';
import { requireDistinct, sameBinding } from './elementwise.ts';

export interface SoftmaxArgs {
  x: Binding;
  out?: Binding;
  rows: number;
  N: number;
  /** T > 0; default 1. */
  temperature?: number;
  subgroups?: boolean;
}

export function softmax(gpu: GpuContext, rec: Recorder, args: SoftmaxArgs): void {
  const { rows, N } = args;
  const T = args.temperature ?? 1;
  requireDims('softmax', { rows, N });
  if (!(Number.isFinite(T) && T > 0)) throw new WebVLMError('InvalidArgument', `softmax: temperature must be a positive finite number, got ${T}.`);
  requireBytes('softmax', 'x', args.x, rows * N * 4);
  const inPlace = !args.out || sameBinding(args.out, args.x);
  if (!inPlace) {
    requireBytes('softmax', 'out', args.out!, rows * N * 4);
    requireDistinct('softmax', args.out!, { x: args.x });
  }
  const subgroups = args.subgroups ?? gpu.variants.subgroups;
  if (subgroups && !gpu.caps.subgroups) throw new WebVLMError('UnsupportedFeature', 'softmax: subgroups requested but the device lacks them.');
  const pipeline = gpu.pipelines.get({ name: 'softmax', source, defines: { SUBGROUPS: subgroups, INPLACE: inPlace } });
  const buf = new ArrayBuffer(16);
  new Uint32Array(buf).set([rows, N]);
  new Float32Array(buf)[2] = T;
  const params = rec.uniform(buf);
  rec.dispatch(pipeline, inPlace ? [args.x, params] : [args.x, args.out!, params], grid(gpu, rows), `softmax${subgroups ? '+sg' : ''}${inPlace ? '/inplace' : ''} ${rows}x${N}`);
}
