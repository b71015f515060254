/**
 * RMSNorm (HF LlamaRMSNorm) and LayerNorm (nn.LayerNorm) over rows of x[rows, D], f32.
 * Shader: shaders/norm.wgsl, one workgroup (256 invocations) per row, so any D works (up to the 12288 of
 * a wide MLP row) and any row count (the grid is split over x/y past 65535 rows).
 * `out` must be a different buffer from the inputs (WebGPU forbids read + write of one buffer per dispatch).
 */
import source from '../../shaders/norm.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { grid, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';

interface NormCommon {
  x: Binding;
  /** Scale γ [D]. */
  weight: Binding;
  out: Binding;
  rows: number;
  D: number;
  /** Added to the (mean square | variance) before the square root; rounded to f32. */
  eps: number;
  /** Force the subgroup reduction on/off (tests); default: the adapter's choice. */
  subgroups?: boolean;
}

export type RmsNormArgs = NormCommon;
export interface LayerNormArgs extends NormCommon {
  /** Shift β [D]. */
  bias: Binding;
}

function prepare(kernel: string, gpu: GpuContext, a: NormCommon, extra: Record<string, Binding>): boolean {
  requireDims(kernel, { rows: a.rows, D: a.D });
  if (!Number.isFinite(a.eps) || a.eps < 0) throw new WebVLMError('InvalidArgument', `${kernel}: eps must be finite and ≥ 0, got ${a.eps}.`);
  requireBytes(kernel, 'x', a.x, a.rows * a.D * 4);
  requireBytes(kernel, 'weight', a.weight, a.D * 4);
  for (const [name, b] of Object.entries(extra)) requireBytes(kernel, name, b, a.D * 4);
  requireBytes(kernel, 'out', a.out, a.rows * a.D * 4);
  requireDistinct(kernel, a.out, { x: a.x, weight: a.weight, ...extra });
  const subgroups = a.subgroups ?? gpu.variants.subgroups;
  if (subgroups && !gpu.caps.subgroups) throw new WebVLMError('UnsupportedFeature', `${kernel}: subgroups requested but the device lacks them.`);
  return subgroups;
}

function params(rec: Recorder, rows: number, D: number, eps: number) {
  const buf = new ArrayBuffer(16);
  new Uint32Array(buf).set([rows, D]);
  new Float32Array(buf)[2] = eps;
  return rec.uniform(buf);
}

/** out[r, :] = weight · x[r, :] / √(mean(x[r, :]²) + eps). */
export function rmsNorm(gpu: GpuContext, rec: Recorder, args: RmsNormArgs): void {
  const subgroups = prepare('rmsNorm', gpu, args, {});
  const pipeline = gpu.pipelines.get({ name: 'norm', source, entryPoint: 'rms_norm', defines: { SUBGROUPS: subgroups } });
  rec.dispatch(pipeline, [args.x, args.weight, args.out, params(rec, args.rows, args.D, args.eps)], grid(gpu, args.rows), `rms_norm${subgroups ? '+sg' : ''} ${args.rows}x${args.D}`);
}

/** out[r, :] = (x[r, :] − mean) / √(var + eps) · weight + bias (biased variance, as nn.LayerNorm). */
export function layerNorm(gpu: GpuContext, rec: Recorder, args: LayerNormArgs): void {
  const subgroups = prepare('layerNorm', gpu, args, { bias: args.bias });
  const pipeline = gpu.pipelines.get({ name: 'norm', source, entryPoint: 'layer_norm', defines: { SUBGROUPS: subgroups } });
  rec.dispatch(
    pipeline,
    [args.x, args.weight, args.bias, args.out, params(rec, args.rows, args.D, args.eps)],
    grid(gpu, args.rows),
    `layer_norm${subgroups ? '+sg' : ''} ${args.rows}x${args.D}`,
  );
}
