/**
 * Idefics3 pixel shuffle (shaders/pixel_shuffle.wgsl): x [frames, h·w, D] → out [frames, (h/s)·(w/s), s²·D]
 * with out[I·(w/s)+J, (di·s+dj)·D+d] = x[(I·s+di)·w + J·s+dj, d] per frame (HF `Idefics3Connector.pixel_shuffle`,
 * which takes h = w = √seq; h ≠ w is supported with the same formula). A pure permutation: exact.
 */
import source from '../../shaders/pixel_shuffle.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';

export interface PixelShuffleArgs {
  x: Binding;
  out: Binding;
  frames: number;
  /** Patch grid of one frame (SmolVLM: 32 × 32). */
  h: number;
  w: number;
  D: number;
  /** scale_factor (SmolVLM: 4; Idefics3 default 2). */
  s: number;
}

export function pixelShuffle(gpu: GpuContext, rec: Recorder, args: PixelShuffleArgs): void {
  const { frames, h, w, D, s } = args;
  requireDims('pixelShuffle', { frames, h, w, D, s });
  if (h % s || w % s) throw new WebVLMError('ShapeMismatch', `pixelShuffle: the ${h}×${w} patch grid is not divisible by the scale factor ${s}.`);
  const n = frames * h * w * D;
  requireBytes('pixelShuffle', 'x', args.x, n * 4);
  requireBytes('pixelShuffle', 'out', args.out, n * 4);
  requireDistinct('pixelShuffle', args.out, { x: args.x });
  const pipeline = gpu.pipelines.get({ name: 'pixel_shuffle', source });
  const params = rec.uniform(new Uint32Array([n, D, s, h, w, 0, 0, 0]));
  rec.dispatch(pipeline, [args.x, args.out, params], grid(gpu, ceilDiv(n, 256)), `pixel_shuffle ${frames}x${h}x${w}x${D} s${s}`);
}
