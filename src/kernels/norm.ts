/**
 * RMSNorm (HF LlamaRMSNorm) and LayerNorm (nn.LayerNorm) over rows of x[rows, D], f32.
 * Shader: shaders/norm.wgsl. Variants (default: `gpu.variants.norm`, see src/gpu/variants.ts):
 *  - 'workgroup' (GPUs): one workgroup (256 invocations) per row, subgroup or tree reduction;
 *  - 'row' (CPU adapters): one row per invocation, no barriers (5–100× faster there over many rows; see the shader).
 * Any D works (up to the 12288 of a wide MLP row) and any row count (the grid is split over x/y past 65535).
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
  /** Force a variant (tests, benchmarks); default: the adapter's choice. */
  variant?: NormVariant;
  /** Force the subgroup reduction on/off (workgroup variant; tests); default: the adapter's choice. */
  subgroups?: boolean;
}

export type NormVariant = 'workgroup' | 'row';
/** Invocations per workgroup of the row variant (rows per workgroup). */
const ROW_WG = 64;

export type RmsNormArgs = NormCommon;
export interface LayerNormArgs extends NormCommon {
  /** Shift β [D]. */
  bias: Binding;
}

interface Plan {
  variant: NormVariant;
  subgroups: boolean;
}

function prepare(kernel: string, gpu: GpuContext, a: NormCommon, extra: Record<string, Binding>): Plan {
  requireDims(kernel, { rows: a.rows, D: a.D });
  if (!Number.isFinite(a.eps) || a.eps < 0) throw new WebVLMError('InvalidArgument', `${kernel}: eps must be finite and ≥ 0, got ${a.eps}.`);
  requireBytes(kernel, 'x', a.x, a.rows * a.D * 4);
  requireBytes(kernel, 'weight', a.weight, a.D * 4);
  for (const [name, b] of Object.entries(extra)) requireBytes(kernel, name, b, a.D * 4);
  requireBytes(kernel, 'out', a.out, a.rows * a.D * 4);
  requireDistinct(kernel, a.out, { x: a.x, weight: a.weight, ...extra });
  const variant = a.variant ?? gpu.variants.norm;
  if (variant !== 'workgroup' && variant !== 'row') throw new WebVLMError('InvalidArgument', `${kernel}: unknown variant ${String(variant)}.`);
  const subgroups = (a.subgroups ?? gpu.variants.subgroups) && variant === 'workgroup';
  if (subgroups && !gpu.caps.subgroups) throw new WebVLMError('UnsupportedFeature', `${kernel}: subgroups requested but the device lacks them.`);
  return { variant, subgroups };
}

function pipelineFor(gpu: GpuContext, entry: 'rms_norm' | 'layer_norm', plan: Plan): GPUComputePipeline {
  const row = plan.variant === 'row';
  return gpu.pipelines.get({
    name: 'norm',
    source,
    entryPoint: row ? `${entry}_row` : entry,
    defines: { SUBGROUPS: plan.subgroups },
    constants: row ? { ROW_WG } : undefined,
  });
}

function workgroups(gpu: GpuContext, plan: Plan, rows: number): [number, number] {
  return grid(gpu, plan.variant === 'row' ? Math.ceil(rows / ROW_WG) : rows);
}

const label = (kernel: string, plan: Plan, rows: number, D: number) => `${kernel}/${plan.variant}${plan.subgroups ? '+sg' : ''} ${rows}x${D}`;

function params(rec: Recorder, rows: number, D: number, eps: number) {
  const buf = new ArrayBuffer(16);
  new Uint32Array(buf).set([rows, D]);
  new Float32Array(buf)[2] = eps;
  return rec.uniform(buf);
}

/** out[r, :] = weight · x[r, :] / √(mean(x[r, :]²) + eps). */
export function rmsNorm(gpu: GpuContext, rec: Recorder, args: RmsNormArgs): void {
  const plan = prepare('rmsNorm', gpu, args, {});
  rec.dispatch(
    pipelineFor(gpu, 'rms_norm', plan),
    [args.x, args.weight, args.out, params(rec, args.rows, args.D, args.eps)],
    workgroups(gpu, plan, args.rows),
    label('rms_norm', plan, args.rows, args.D),
  );
}

/** out[r, :] = (x[r, :] − mean) / √(var + eps) · weight + bias (biased variance, as nn.LayerNorm). */
export function layerNorm(gpu: GpuContext, rec: Recorder, args: LayerNormArgs): void {
  const plan = prepare('layerNorm', gpu, args, { bias: args.bias });
  rec.dispatch(
    pipelineFor(gpu, 'layer_norm', plan),
    [args.x, args.weight, args.bias, args.out, params(rec, args.rows, args.D, args.eps)],
    workgroups(gpu, plan, args.rows),
    label('layer_norm', plan, args.rows, args.D),
  );
}
