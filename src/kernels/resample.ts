/**
 * Idefics3 image preprocessing on the GPU (shaders/resample.wgsl), bit-exact with the CPU reference
 * `imagePixels` (src/engine/idefics3-processor.ts), itself bit-exact with transformers + Pillow:
 * the decoded image is uploaded once as packed RGBA8 (4 B/px), the plan's resize chain runs as separable
 * two-pass resizes driven by the CPU's own tap tables (`lanczosTaps`: Pillow's 22-bit fixed-point
 * weights; `nearestIndices` for gray images, which Pillow resizes NEAREST), with uint8 between the
 * passes and after every step as Pillow has, then the frames are cut, composited on white, normalised
 * through `normalizationTable` and written as f32 [frames, 3, M, M] where the vision tower reads them.
 *
 * Layering note: the tap tables and the normalisation table come from src/engine/resample.ts (a leaf
 * module of pure math that imports only errors.ts), so the GPU and CPU paths cannot drift apart; the plan
 * and config types are type-only imports.
 */
import source from '../../shaders/resample.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { upload } from '../gpu/io.ts';
import { lanczosTaps, MAX_IMAGE_SIDE, nearestIndices, normalizationTable, TAP_PRECISION_BITS, validateImage, type PixelImage } from '../input/resample.ts';
import type { ImagePlan, PixelPipeline } from '../input/image-plan.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';

/**
 * What the packed RGBA8 words hold: 'rgba' (resized premultiplied, composited on white when the config
 * converts to RGB), 'rgb' (alpha ignored: an RGB source) or 'gray' (R = G = B: a 1-channel source, which
 * transformers hands to Pillow as mode "P", so every resize is NEAREST).
 */
export type ImageFormat = 'rgba' | 'rgb' | 'gray';
const FORMATS: readonly ImageFormat[] = ['rgba', 'rgb', 'gray'];

/** Temporaries: a storage buffer (TENSOR_USAGE) of at least `bytes`, alive until the recorded work has run. */
export type Scratch = (bytes: number, label: string) => GPUBuffer;

export type PreprocessPlan = Pick<ImagePlan, 'original' | 'resizes' | 'rows' | 'cols' | 'frames' | 'tileSize'>;
export type PreprocessConfig = PixelPipeline;

export interface PreprocessArgs {
  /** Packed RGBA8 pixels, row-major, one u32 per pixel (R in the low byte): `ImageData.data` as is. */
  image: Binding;
  width: number;
  height: number;
  format?: ImageFormat;
  plan: PreprocessPlan;
  config: PreprocessConfig;
  /** f32 [frames, 3, M, M] from float `outOffset` on. */
  out: Binding;
  outOffset?: number;
  scratch: Scratch;
}

export interface ResizeArgs {
  src: Binding;
  /** Packed RGBA8 outW × outH. */
  dst: Binding;
  inW: number;
  inH: number;
  outW: number;
  outH: number;
  format?: ImageFormat;
  scratch: Scratch;
}

// ---- Planning (CPU, before anything is recorded) ----------------------------------------------

/** A pass's table in the layout the shader reads: start[n], count[n], weights tap-major. */
function tapTable(inSize: number, outSize: number, format: ImageFormat): Int32Array {
  if (format === 'gray') {
    const idx = nearestIndices(inSize, outSize);
    const t = new Int32Array(3 * outSize);
    t.set(idx, 0);
    t.fill(1, outSize, 2 * outSize);
    t.fill(1 << TAP_PRECISION_BITS, 2 * outSize); // one tap of weight 1: (½ + v·2²²) >> 22 = v
    return t;
  }
  const { start, count, fixed, ksize } = lanczosTaps(inSize, outSize);
  let used = 0;
  for (let x = 0; x < outSize; x++) used = Math.max(used, count[x]);
  const n = outSize;
  const t = new Int32Array((2 + used) * n);
  t.set(start, 0);
  t.set(count, n);
  for (let x = 0; x < n; x++) for (let i = 0; i < count[x]; i++) t[(2 + i) * n + x] = fixed[x * ksize + i];
  return t;
}

interface StepPlan {
  inW: number;
  inH: number;
  outW: number;
  outH: number;
  /** Horizontal pass: its table's word offset, and the source rows [first, first + rows) it covers. */
  h?: { tapOff: number; first: number; rows: number };
  v?: { tapOff: number };
}

/** Accumulates every pass's table into one upload. */
class TapPacker {
  private parts: Int32Array[] = [];
  words = 0;
  add(t: Int32Array): number {
    const off = this.words;
    this.parts.push(t);
    this.words += t.length;
    return off;
  }
  concat(): Int32Array {
    const all = new Int32Array(Math.max(this.words, 4));
    let o = 0;
    for (const p of this.parts) {
      all.set(p, o);
      o += p.length;
    }
    return all;
  }
}

/** One Pillow resize as passes: horizontal only over the rows the vertical pass reads (as Pillow does). */
function planStep(inW: number, inH: number, outW: number, outH: number, format: ImageFormat, taps: TapPacker): StepPlan {
  const s: StepPlan = { inW, inH, outW, outH };
  const needH = outW !== inW;
  const needV = outH !== inH;
  if (needV) {
    const t = tapTable(inH, outH, format);
    s.v = { tapOff: taps.add(t) };
    if (needH) {
      const first = t[0];
      const last = t[outH - 1] + t[2 * outH - 1];
      s.h = { tapOff: taps.add(tapTable(inW, outW, format)), first, rows: last - first };
    }
  } else if (needH) {
    s.h = { tapOff: taps.add(tapTable(inW, outW, format)), first: 0, rows: inH };
  }
  return s;
}

function checkImageSize(kernel: string, what: string, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE) {
    throw new WebVLMError('ShapeMismatch', `${kernel}: ${what} ${w}×${h} is not a positive integer size up to ${MAX_IMAGE_SIDE}.`);
  }
}

function checkFormat(kernel: string, format: ImageFormat): void {
  if (!FORMATS.includes(format)) throw new WebVLMError('InvalidArgument', `${kernel}: format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(format)}.`);
}

/** Every temporary must fit one storage binding; checked before recording. */
function checkScratch(gpu: GpuContext, kernel: string, bytes: number, what: string): void {
  const max = Math.min(gpu.caps.limits.maxStorageBufferBindingSize, gpu.caps.limits.maxBufferSize);
  if (bytes > max) {
    throw new WebVLMError('OutOfMemory', `${kernel}: the ${what} needs ${bytes} bytes; this adapter binds at most ${max}.`, { details: { bytes, max } });
  }
}

function stepScratch(gpu: GpuContext, kernel: string, s: StepPlan): void {
  if (s.h && s.v) checkScratch(gpu, kernel, s.outW * s.h.rows * 4, `${s.inW}×${s.inH}→${s.outW}×${s.outH} intermediate`);
  checkScratch(gpu, kernel, s.outW * s.outH * 4, `${s.outW}×${s.outH} image`);
}

// ---- Recording ---------------------------------------------------------------------------------

const WG_X = 64;
const WG_Y = 4;

function passParams(rec: Recorder, inW: number, outW: number, outH: number, y0: number, tapOff: number, flags: number) {
  return rec.uniform(new Uint32Array([inW, outW, outH, y0, tapOff, 0, flags, 0]));
}

/** Records a planned resize from `src` to `dst` (both packed RGBA8). */
function recordStep(gpu: GpuContext, rec: Recorder, s: StepPlan, src: Binding, dst: Binding, tapBuf: GPUBuffer, format: ImageFormat, scratch: Scratch): void {
  const premul = format === 'rgba' ? 1 : 0;
  const unpremul = format === 'rgba' ? 2 : 0;
  const name = `${s.inW}x${s.inH}→${s.outW}x${s.outH}`;
  const hp = gpu.pipelines.get({ name: 'resample', source, entryPoint: 'resample_h' });
  const vp = gpu.pipelines.get({ name: 'resample', source, entryPoint: 'resample_v' });
  const wg = (w: number, h: number): [number, number] => [ceilDiv(w, WG_X), ceilDiv(h, WG_Y)];
  if (s.h && s.v) {
    const tmp = scratch(s.outW * s.h.rows * 4, 'resample/tmp');
    const uh = passParams(rec, s.inW, s.outW, s.h.rows, s.h.first, s.h.tapOff, premul);
    rec.dispatch(hp, [src, tmp, tapBuf, uh], wg(s.outW, s.h.rows), `resample/h ${name}`);
    const uv = passParams(rec, s.outW, s.outW, s.outH, s.h.first, s.v.tapOff, unpremul);
    rec.dispatch(vp, [tmp, dst, tapBuf, uv], wg(s.outW, s.outH), `resample/v ${name}`);
  } else if (s.h) {
    const u = passParams(rec, s.inW, s.outW, s.inH, 0, s.h.tapOff, premul | unpremul);
    rec.dispatch(hp, [src, dst, tapBuf, u], wg(s.outW, s.inH), `resample/h ${name}`);
  } else if (s.v) {
    const u = passParams(rec, s.inW, s.outW, s.outH, 0, s.v.tapOff, premul | unpremul);
    rec.dispatch(vp, [src, dst, tapBuf, u], wg(s.outW, s.outH), `resample/v ${name}`);
  } else {
    // Same size: transformers/Pillow copy. Buffer copies take whole-buffer offsets.
    const a = asRange(src), b = asRange(dst);
    rec.copy(a.buffer, a.offset, b.buffer, b.offset, s.inW * s.inH * 4);
  }
}

function asRange(b: Binding): { buffer: GPUBuffer; offset: number } {
  return 'buffer' in b ? { buffer: b.buffer, offset: b.offset ?? 0 } : { buffer: b, offset: 0 };
}

function uploadTaps(gpu: GpuContext, taps: TapPacker, scratch: Scratch): GPUBuffer {
  const all = taps.concat();
  const buf = scratch(all.byteLength, 'resample/taps');
  gpu.device.queue.writeBuffer(buf, 0, all.buffer, all.byteOffset, all.byteLength);
  return buf;
}

/**
 * One Pillow resize (`resizePil`) of a packed RGBA8 image: Lanczos (RGBA premultiplied) or, for 'gray',
 * NEAREST. Same size is a copy. Temporaries (the tap table, the between-passes image) come from `scratch`.
 */
export function resizeImage(gpu: GpuContext, rec: Recorder, args: ResizeArgs): void {
  const K = 'resizeImage';
  const { inW, inH, outW, outH } = args;
  const format = args.format ?? 'rgba';
  checkImageSize(K, 'source', inW, inH);
  checkImageSize(K, 'target', outW, outH);
  checkFormat(K, format);
  requireBytes(K, 'src', args.src, inW * inH * 4);
  requireBytes(K, 'dst', args.dst, outW * outH * 4);
  requireDistinct(K, args.dst, { src: args.src });
  const taps = new TapPacker();
  const step = planStep(inW, inH, outW, outH, format, taps);
  stepScratch(gpu, K, step);
  const tapBuf = step.h || step.v ? uploadTaps(gpu, taps, args.scratch) : dummy(gpu); // a same-size copy reads no taps
  recordStep(gpu, rec, step, args.src, args.dst, tapBuf, format, args.scratch);
}

/** The plan's final image size and whether the tiles need a separate global frame resize. */
function checkPlan(K: string, plan: PreprocessPlan, config: PreprocessConfig, width: number, height: number): { final: [number, number] } {
  const M = config.tileSize;
  requireDims(K, { tileSize: M, frames: plan.frames });
  requireDims(K, { rows: plan.rows, cols: plan.cols }, { allowZero: true });
  if (plan.tileSize !== M) throw new WebVLMError('ShapeMismatch', `${K}: the plan was made for tile ${plan.tileSize}, the config has ${M}.`);
  if (plan.original.width !== width || plan.original.height !== height) {
    throw new WebVLMError('InvalidArgument', `${K}: image is ${width}×${height} but the plan was made for ${plan.original.width}×${plan.original.height}.`);
  }
  let w = width, h = height;
  for (const s of plan.resizes) {
    checkImageSize(K, 'resize step', s.width, s.height);
    w = s.width;
    h = s.height;
  }
  const single = plan.rows === 0 && plan.cols === 0;
  if (single ? w !== M || h !== M || plan.frames !== 1 : plan.rows < 1 || plan.cols < 1 || w !== plan.cols * M || h !== plan.rows * M || plan.frames !== plan.rows * plan.cols + 1) {
    throw new WebVLMError('ShapeMismatch', `${K}: plan inconsistent: resized to ${w}×${h}, ${plan.rows}×${plan.cols} tiles of ${M}, ${plan.frames} frames.`);
  }
  return { final: [w, h] };
}

/**
 * `imagePixels` on the GPU: resize chain → tiles (row-major) + global frame → convert_rgb → rescale +
 * normalize → f32 [frames, 3, M, M] at `out[outOffset…]`. Records only (plus the table uploads through
 * `queue.writeBuffer` into scratch buffers, which land before the recorder's submit).
 */
export function preprocessImage(gpu: GpuContext, rec: Recorder, args: PreprocessArgs): void {
  const K = 'preprocessImage';
  const { width, height, plan, config } = args;
  const format = args.format ?? 'rgba';
  const outOffset = args.outOffset ?? 0;
  checkImageSize(K, 'image', width, height);
  checkFormat(K, format);
  requireDims(K, { outOffset }, { allowZero: true });
  // The GPU resampler runs PIL's LANCZOS (and NEAREST for gray); a BICUBIC pipeline (InternVL) is prepared on the CPU.
  if ((config.resample ?? 'lanczos') !== 'lanczos') throw new WebVLMError('UnsupportedFeature', `${K}: the ${config.resample} filter is not implemented on the GPU; prepare these pixels on the CPU.`);
  const { final } = checkPlan(K, plan, config, width, height);
  const M = config.tileSize;
  requireBytes(K, 'image', args.image, width * height * 4);
  requireBytes(K, 'out', args.out, (outOffset + plan.frames * 3 * M * M) * 4);
  requireDistinct(K, args.out, { image: args.image });
  const maxZ = gpu.caps.limits.maxComputeWorkgroupsPerDimension;

  // Plan every resize (the chain, then the global frame from the chain's result) and check the temporaries.
  const taps = new TapPacker();
  const steps: StepPlan[] = [];
  let w = width, h = height;
  for (const s of plan.resizes) {
    if (s.width === w && s.height === h) continue; // a same-size step is a copy: skip it
    steps.push(planStep(w, h, s.width, s.height, format, taps));
    w = s.width;
    h = s.height;
  }
  const tiled = plan.rows > 0;
  const global = tiled && (final[0] !== M || final[1] !== M) ? planStep(final[0], final[1], M, M, format, taps) : null;
  for (const s of global ? [...steps, global] : steps) stepScratch(gpu, K, s);

  // Record.
  const tapBuf = uploadTaps(gpu, taps, args.scratch);
  const lutData = normalizationTable({
    rescaleFactor: config.rescaleFactor, mean: config.imageMean, std: config.imageStd, doRescale: config.doRescale, doNormalize: config.doNormalize,
  });
  const lut = args.scratch(lutData.byteLength, 'resample/lut');
  gpu.device.queue.writeBuffer(lut, 0, lutData.buffer, lutData.byteOffset, lutData.byteLength);
  let cur: Binding = args.image;
  for (const s of steps) {
    const next = args.scratch(s.outW * s.outH * 4, 'resample/image');
    recordStep(gpu, rec, s, cur, next, tapBuf, format, args.scratch);
    cur = next;
  }
  const fp = gpu.pipelines.get({ name: 'resample', source, entryPoint: 'write_frames' });
  const composite = format === 'rgba' && config.doConvertRgb ? 1 : 0;
  const frames = (src: Binding, srcW: number, cols: number, frame0: number, count: number) => {
    for (let z0 = 0; z0 < count; z0 += maxZ) {
      const z = Math.min(maxZ, count - z0);
      const u = rec.uniform(new Uint32Array([srcW, cols, M, frame0, outOffset, composite, z0, 0]));
      rec.dispatch(fp, [src, args.out, lut, u], [ceilDiv(M, WG_X), ceilDiv(M, WG_Y), z], `resample/frames ${z}x${M}x${M}`);
    }
  };
  if (!tiled) {
    frames(cur, M, 1, 0, 1);
    return;
  }
  frames(cur, final[0], plan.cols, 0, plan.rows * plan.cols);
  if (global) {
    const g = args.scratch(M * M * 4, 'resample/global');
    recordStep(gpu, rec, global, cur, g, tapBuf, format, args.scratch);
    cur = g;
  }
  frames(cur, M, 1, plan.rows * plan.cols, 1);
}

// ---- Upload ------------------------------------------------------------------------------------

/** A decoded image as the packed RGBA8 words the shaders read (RGBA as is; RGB gets A = 255; gray is replicated). */
export function packRgba(img: PixelImage): { data: Uint8Array; format: ImageFormat } {
  validateImage(img);
  const d = img.data;
  if (img.channels === 4) return { data: d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.length), format: 'rgba' };
  const n = img.width * img.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const c = img.channels === 3 ? [d[i * 3], d[i * 3 + 1], d[i * 3 + 2]] : [d[i], d[i], d[i]];
    out[i * 4] = c[0];
    out[i * 4 + 1] = c[1];
    out[i * 4 + 2] = c[2];
    out[i * 4 + 3] = 255;
  }
  return { data: out, format: img.channels === 3 ? 'rgb' : 'gray' };
}

/** Uploads a decoded image (4 B/px) for `preprocessImage`; the caller destroys `buffer`. */
export function uploadImage(gpu: GpuContext, img: PixelImage, label = 'image/rgba'): { buffer: GPUBuffer; width: number; height: number; format: ImageFormat } {
  const { data, format } = packRgba(img);
  return { buffer: upload(gpu, data, label), width: img.width, height: img.height, format };
}
