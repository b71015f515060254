/**
 * CPU reference image resampling and normalisation, bit-exact with what Hugging Face's slow Idefics3
 * image processor gets from Pillow: `Image.resize(size, LANCZOS)` on uint8 images, RGBA premultiplied
 * while resizing, 1-channel images resized NEAREST (transformers hands them to PIL as mode "P"),
 * `convert_rgb` (alpha composite on white), then rescale (float64 → float32) and normalize (float32).
 *
 * Written from the algorithm's description (separable two-pass convolution, support scaled by the
 * downscale factor, normalised taps in 22-bit fixed point, uint8 intermediate between the passes).
 * This is the reference and the fallback; the GPU resampler is checked against it, and can reuse the
 * exact tap tables from `lanczosTaps`.
 */
import { WebVLMError } from '../errors.ts';

export type Channels = 1 | 3 | 4;

/** Interleaved uint8 pixels, row-major (`ImageData` is one with `channels: 4`). */
export interface PixelImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: Channels;
}

/** Largest side accepted anywhere (PIL and canvases choke far earlier on area; this bounds the tap tables). */
export const MAX_IMAGE_SIDE = 1 << 16;

export function validateImage(img: PixelImage, what = 'image'): void {
  const { width, height, channels } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE) {
    throw new WebVLMError('InvalidImage', `${what}: size ${width}×${height} is not a positive integer size up to ${MAX_IMAGE_SIDE}.`, {
      details: { width, height },
    });
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new WebVLMError('InvalidImage', `${what}: ${channels} channels; only 1 (gray), 3 (RGB) and 4 (RGBA) are supported.`);
  }
  if (img.data.length !== width * height * channels) {
    throw new WebVLMError('InvalidImage', `${what}: ${img.data.length} bytes of pixels, but ${width}×${height}×${channels} needs ${width * height * channels}.`);
  }
}

function checkSize(w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE) {
    throw new WebVLMError('InvalidArgument', `resize target ${w}×${h} is not a positive integer size up to ${MAX_IMAGE_SIDE}.`);
  }
}

// ---- Lanczos taps -------------------------------------------------------------------------------

function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

/** Lanczos window a = 3 (PIL's LANCZOS: truncated sinc on [-3, 3)). */
export function lanczos3(x: number): number {
  return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** Fixed-point precision of the taps: 32 bits minus 8 for the pixel, minus 2 for the lobes' overshoot. */
export const TAP_PRECISION_BITS = 22;

export interface Taps {
  inSize: number;
  outSize: number;
  /** Taps per output sample (the stride of `weights`/`fixed`). */
  ksize: number;
  /** First input sample of each output sample. */
  start: Int32Array;
  /** Number of taps actually used by each output sample (≤ ksize). */
  count: Int32Array;
  /** Normalised taps (sum 1 per output sample), outSize × ksize, zero past `count`. */
  weights: Float64Array;
  /** The same taps rounded half away from zero to TAP_PRECISION_BITS fixed point, as PIL does for 8-bit images. */
  fixed: Int32Array;
}

const tapCache = new Map<string, Taps>();

/**
 * Taps of a 1-D Lanczos-3 resample from `inSize` to `outSize` samples. Downscaling stretches the
 * kernel by the scale factor (antialiasing); upscaling keeps support 3. Pixel centres at i + 0.5.
 */
export function lanczosTaps(inSize: number, outSize: number): Taps {
  return filterTaps(inSize, outSize, 'lanczos');
}

/**
 * PIL's BICUBIC filter (`bicubic_filter` in Resample.c, a = −0.5, support 2): the same separable scheme as
 * LANCZOS (support stretched by the downscale factor, normalised taps in 22-bit fixed point).
 */
export function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Taps of a 1-D PIL BICUBIC resample from `inSize` to `outSize` samples (see `lanczosTaps`). */
export function bicubicTaps(inSize: number, outSize: number): Taps {
  return filterTaps(inSize, outSize, 'bicubic');
}

const FILTERS = { lanczos: { fn: lanczos3, support: 3 }, bicubic: { fn: bicubic, support: 2 } } as const;

function filterTaps(inSize: number, outSize: number, kind: keyof typeof FILTERS): Taps {
  const key = `${kind}:${inSize}:${outSize}`;
  const hit = tapCache.get(key);
  if (hit) return hit;
  const filter = FILTERS[kind].fn;
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = FILTERS[kind].support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const fixed = new Int32Array(outSize * ksize);
  const inv = 1 / filterscale;
  const one = 2 ** TAP_PRECISION_BITS;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C `(int)` truncates toward zero; both ends are clamped to the image.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const base = xx * ksize;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter((x + xmin - center + 0.5) * inv);
      weights[base + x] = w;
      sum += w;
    }
    for (let x = 0; x < xmax; x++) {
      if (sum !== 0) weights[base + x] /= sum;
      const w = weights[base + x];
      fixed[base + x] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  const taps = { inSize, outSize, ksize, start, count, weights, fixed };
  if (tapCache.size > 64) tapCache.clear();
  tapCache.set(key, taps);
  return taps;
}

// ---- Resampling ---------------------------------------------------------------------------------

/** A Uint8Array view of the pixels (keeps the hot loops monomorphic for Uint8ClampedArray inputs). */
function bytesOf(img: PixelImage): Uint8Array {
  const d = img.data;
  return d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.length);
}

const HALF = 1 << (TAP_PRECISION_BITS - 1);

/** (ss >> 22) clamped to 0..255: round-half-up of the fixed-point sum (it starts at HALF). */
function clip8(ss: number): number {
  const v = ss >> TAP_PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows [y0, y0 + rows) of `src` (width inW) into a new image of width taps.outSize. */
function passHorizontal(src: Uint8Array, inW: number, c: number, y0: number, rows: number, t: Taps): Uint8Array {
  const outW = t.outSize;
  const out = new Uint8Array(outW * rows * c);
  const { start, count, fixed, ksize } = t;
  for (let y = 0; y < rows; y++) {
    const rowIn = (y0 + y) * inW * c;
    const rowOut = y * outW * c;
    for (let xx = 0; xx < outW; xx++) {
      const k0 = xx * ksize;
      const n = count[xx];
      const p0 = rowIn + start[xx] * c;
      const o = rowOut + xx * c;
      if (c === 3 || c === 4) {
        // All channels per tap: one pass over the taps (the common RGB/RGBA case).
        let s0 = HALF, s1 = HALF, s2 = HALF, s3 = HALF;
        for (let x = 0, p = p0; x < n; x++, p += c) {
          const k = fixed[k0 + x];
          s0 = (s0 + src[p] * k) | 0;
          s1 = (s1 + src[p + 1] * k) | 0;
          s2 = (s2 + src[p + 2] * k) | 0;
          if (c === 4) s3 = (s3 + src[p + 3] * k) | 0;
        }
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
        if (c === 4) out[o + 3] = clip8(s3);
        continue;
      }
      for (let ch = 0; ch < c; ch++) {
        let ss = HALF;
        for (let x = 0, p = p0 + ch; x < n; x++, p += c) ss = (ss + src[p] * fixed[k0 + x]) | 0;
        out[o + ch] = clip8(ss);
      }
    }
  }
  return out;
}

/** Vertical pass: `src` has width w; output row yy reads rows start[yy] - offset … of src. */
function passVertical(src: Uint8Array, w: number, c: number, offset: number, t: Taps): Uint8Array {
  const outH = t.outSize;
  const stride = w * c;
  const out = new Uint8Array(stride * outH);
  const { start, count, fixed, ksize } = t;
  // Row-wise accumulation (streams whole rows; same integer sums as per-pixel, no int32 overflow).
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const k0 = yy * ksize;
    const n = count[yy];
    const r0 = (start[yy] - offset) * stride;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const kv = fixed[k0 + y];
      const row = r0 + y * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i] + src[row + i] * kv) | 0;
    }
    const rowOut = yy * stride;
    for (let i = 0; i < stride; i++) out[rowOut + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * Lanczos-3 resize of every channel independently (no alpha handling), PIL's 8-bit algorithm:
 * horizontal pass first (only over the rows the vertical pass reads), uint8 in between, then vertical.
 */
export function resizeLanczosRaw(img: PixelImage, width: number, height: number): PixelImage {
  return resizeRaw(img, width, height, lanczosTaps);
}

/** PIL's 8-bit BICUBIC resize of every channel independently (no alpha handling); the scheme of `resizeLanczosRaw`. */
export function resizeBicubicRaw(img: PixelImage, width: number, height: number): PixelImage {
  return resizeRaw(img, width, height, bicubicTaps);
}

function resizeRaw(img: PixelImage, width: number, height: number, taps: (inSize: number, outSize: number) => Taps): PixelImage {
  validateImage(img);
  checkSize(width, height);
  const { width: inW, height: inH, channels: c } = img;
  const src = bytesOf(img);
  const needH = width !== inW;
  const needV = height !== inH;
  if (!needH && !needV) return { data: new Uint8Array(img.data), width, height, channels: c };
  const tv = taps(inH, height);
  if (!needV) return { data: passHorizontal(src, inW, c, 0, inH, taps(inW, width)), width, height, channels: c };
  if (!needH) return { data: passVertical(src, inW, c, 0, tv), width, height, channels: c };
  const first = tv.start[0];
  const last = tv.start[height - 1] + tv.count[height - 1];
  const tmp = passHorizontal(src, inW, c, first, last - first, taps(inW, width));
  return { data: passVertical(tmp, width, c, first, tv), width, height, channels: c };
}

/**
 * The input sample PIL's NEAREST resize (ImagingScaleAffine) takes for each of `outSize` outputs: at
 * (x + 0.5)·scale, the position accumulated in float64 as PIL does. Shared with the GPU resampler.
 */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const s = inSize / outSize;
  const idx = new Int32Array(outSize);
  let o = s * 0.5;
  for (let x = 0; x < outSize; x++, o += s) idx[x] = Math.min(Math.trunc(o), inSize - 1);
  return idx;
}

/** PIL's NEAREST resize: each output pixel copies the input pixel `nearestIndices` picks per axis. */
export function resizeNearest(img: PixelImage, width: number, height: number): PixelImage {
  validateImage(img);
  checkSize(width, height);
  const { width: inW, height: inH, channels: c } = img;
  const xin = nearestIndices(inW, width);
  const yin = nearestIndices(inH, height);
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++) {
    const row = yin[y] * inW;
    for (let x = 0; x < width; x++) {
      const s = (row + xin[x]) * c;
      const d = (y * width + x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = img.data[s + ch];
    }
  }
  return { data: out, width, height, channels: c };
}

/** RGBA → premultiplied RGBa with PIL's rounding (a·b/255 rounded). */
export function premultiplyAlpha(img: PixelImage): PixelImage {
  const d = img.data;
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i += 4) {
    const a = d[i + 3];
    for (let ch = 0; ch < 3; ch++) {
      const t = d[i + ch] * a + 128;
      out[i + ch] = ((t >> 8) + t) >> 8;
    }
    out[i + 3] = a;
  }
  return { data: out, width: img.width, height: img.height, channels: 4 };
}

/** Premultiplied RGBa → RGBA with PIL's rounding (truncating 255·v/a, clamped). In place. */
export function unpremultiplyAlpha(img: PixelImage): PixelImage {
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const a = d[i + 3];
    if (a === 0 || a === 255) continue;
    for (let ch = 0; ch < 3; ch++) d[i + ch] = Math.min(255, Math.floor((255 * d[i + ch]) / a));
  }
  return img;
}

/**
 * What `PIL.Image.resize((w, h), LANCZOS)` does to the array transformers hands it: same size → copy;
 * RGBA → resized premultiplied; 1 channel → NEAREST (transformers builds a mode "P" image from it).
 */
export function resizePil(img: PixelImage, width: number, height: number): PixelImage {
  validateImage(img);
  checkSize(width, height);
  if (width === img.width && height === img.height) return { ...img, data: new Uint8Array(img.data) };
  if (img.channels === 1) return resizeNearest(img, width, height);
  if (img.channels === 4) return unpremultiplyAlpha(resizeLanczosRaw(premultiplyAlpha(img), width, height));
  return resizeLanczosRaw(img, width, height);
}

export function cropImage(img: PixelImage, x: number, y: number, width: number, height: number): PixelImage {
  if (x < 0 || y < 0 || width < 1 || height < 1 || x + width > img.width || y + height > img.height) {
    throw new WebVLMError('InvalidArgument', `crop ${width}×${height}+${x}+${y} is outside the ${img.width}×${img.height} image.`);
  }
  const c = img.channels;
  const out = new Uint8Array(width * height * c);
  for (let r = 0; r < height; r++) {
    const s = ((y + r) * img.width + x) * c;
    out.set(img.data.subarray(s, s + width * c), r * width * c);
  }
  return { data: out, width, height, channels: c };
}

// ---- convert_rgb + rescale + normalize -----------------------------------------------------------

/** PIL `alpha_composite(white, rgba)` for one channel value (7-bit-precision integer blend, rounded). */
function overWhite(v: number, a: number): number {
  if (a === 0) return 255;
  const outa255 = a * 255 + 255 * (255 - a);
  const coef1 = Math.floor((a * 255 * 255 * 128) / outa255);
  const coef2 = 255 * 128 - coef1;
  const t = v * coef1 + 255 * coef2 + (0x80 << 7);
  return (((t >> 8) + t) >> 8) >> 7;
}

/** transformers' `convert_to_rgb`: RGBA composited on opaque white, gray replicated, RGB copied. */
export function toRgb(img: PixelImage): PixelImage {
  validateImage(img);
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  const d = img.data;
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) {
      out[i * 3 + ch] = img.channels === 4 ? overWhite(d[i * 4 + ch], d[i * 4 + 3]) : img.channels === 3 ? d[i * 3 + ch] : d[i];
    }
  }
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

/** PIL `Image.convert('RGB')`: RGBA loses its alpha (no compositing), gray is replicated, RGB is copied. */
export function toRgbDropAlpha(img: PixelImage): PixelImage {
  validateImage(img);
  const n = img.width * img.height, c = img.channels, d = img.data;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = c === 1 ? d[i] : d[i * c + ch];
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

export interface NormalizeOptions {
  rescaleFactor: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  doRescale?: boolean;
  doNormalize?: boolean;
  /**
   * Rescale as torchvision's `ToTensor` does (`uint8.float().div(d)` in float32, InternVL's `build_transform`) instead
   * of transformers' float64 multiply by `rescaleFactor`.
   */
  rescaleDivisor?: number;
}

/**
 * value → float per channel, as transformers computes it: rescale in float64 then cast to float32,
 * normalize in float32 ((x − mean) / std with mean/std cast to float32). One 256-entry table per channel.
 */
export function normalizationTable(o: NormalizeOptions): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let ch = 0; ch < 3; ch++) {
    const mean = Math.fround(o.mean[ch]);
    const std = Math.fround(o.std[ch]);
    for (let v = 0; v < 256; v++) {
      let x = o.doRescale === false ? v : o.rescaleDivisor !== undefined ? Math.fround(v / o.rescaleDivisor) : Math.fround(v * o.rescaleFactor);
      if (o.doNormalize !== false) x = Math.fround(Math.fround(x - mean) / std);
      lut[ch * 256 + v] = x;
    }
  }
  return lut;
}

/**
 * Writes the `w×h` region at (x, y) of `img` as channels-first float32 [3, h, w] at `out[offset…]`,
 * converting to RGB on the way (composite on white / replicate gray) and normalising through `lut`.
 */
export function writeNormalizedFrame(
  img: PixelImage,
  rect: { x: number; y: number; width: number; height: number },
  lut: Float32Array,
  out: Float32Array,
  offset: number,
  convertRgb = true,
): void {
  const { x, y, width: w, height: h } = rect;
  const c = img.channels;
  const plane = w * h;
  if (offset + 3 * plane > out.length) throw new WebVLMError('BufferTooSmall', `normalized frame needs ${3 * plane} floats at ${offset}, buffer holds ${out.length}.`);
  const d = img.data;
  for (let r = 0; r < h; r++) {
    for (let q = 0; q < w; q++) {
      const s = ((y + r) * img.width + x + q) * c;
      const o = offset + r * w + q;
      for (let ch = 0; ch < 3; ch++) {
        let v: number;
        if (c === 1) v = d[s];
        else if (c === 3 || !convertRgb) v = d[s + ch];
        else v = overWhite(d[s + ch], d[s + 3]);
        out[o + ch * plane] = lut[ch * 256 + v];
      }
    }
  }
}

/** RGB(A)/gray frames → float32 [frames, 3, H, W] (all frames the same size). */
export function framesToTensor(frames: PixelImage[], o: NormalizeOptions, convertRgb = true): Float32Array {
  if (frames.length === 0) return new Float32Array(0);
  const { width, height } = frames[0];
  const lut = normalizationTable(o);
  const out = new Float32Array(frames.length * 3 * width * height);
  frames.forEach((f, i) => {
    validateImage(f, `frame ${i}`);
    if (f.width !== width || f.height !== height) throw new WebVLMError('ShapeMismatch', `frame ${i} is ${f.width}×${f.height}, frame 0 is ${width}×${height}.`);
    writeNormalizedFrame(f, { x: 0, y: 0, width, height }, lut, out, i * 3 * width * height, convertRgb);
  });
  return out;
}
