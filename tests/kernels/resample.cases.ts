/**
 * GPU image preprocessing vs the CPU reference (which the engine tests pin to Pillow's own outputs):
 * single resizes vs `resizePil`, whole Idefics3 chains vs `imagePixels`. Integer arithmetic on both
 * sides with the same tap tables, so the expected difference is 0 everywhere (uint8 and normalised f32).
 */
import { preprocessImage, resizeImage, packRgba, uploadImage, type ImageFormat, type PreprocessArgs } from '../../src/kernels/resample.ts';
import { readBytes, readF32, upload } from '../../src/gpu/io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { resizePil, normalizationTable, type Channels, type PixelImage } from '../../src/input/resample.ts';
import { imagePixels, parseProcessorConfig, planImage, type Idefics3ProcessorConfig, type Tiler } from '../../src/models/idefics3/processor.ts';
import { assertClose, expectReject, rng } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

/** Smooth gradient + noise; alpha (channel 3) mixes fully transparent, opaque and partial regions. */
function randomImage(w: number, h: number, c: Channels, seed: number): PixelImage {
  const r = rng(seed);
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * c;
      for (let ch = 0; ch < Math.min(c, 3); ch++) data[i + ch] = Math.min(255, Math.floor(((x * (ch + 1) * 97) / w + (y * 131) / h) % 200 + r() * 56));
      if (c === 4) {
        const zone = ((x * 5) / w + (y * 3) / h + seed) % 3 | 0;
        data[i + 3] = zone === 0 ? 0 : zone === 1 ? 255 : Math.floor(r() * 256);
      }
    }
  }
  return { data, width: w, height: h, channels: c };
}

function arenaScratch(gpu: GpuContext) {
  const arena = gpu.arena('resample-test');
  return { arena, scratch: (bytes: number, label: string) => arena.buffer(bytes, undefined, label) };
}

/** Max |a − b| over the channels the format defines (gray: R; rgb: RGB; rgba: all four). */
function diffU8(got: Uint8Array, ref: PixelImage): number {
  const n = ref.width * ref.height;
  let max = 0;
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < ref.channels; ch++) max = Math.max(max, Math.abs(got[i * 4 + ch] - ref.data[i * ref.channels + ch]));
  }
  return max;
}

async function checkResize({ gpu, log }: CaseContext, w: number, h: number, W: number, H: number, c: Channels, seed: number) {
  const img = randomImage(w, h, c, seed);
  const { buffer, format } = uploadImage(gpu, img);
  const dst = gpu.allocator.create(W * H * 4);
  const { arena, scratch } = arenaScratch(gpu);
  const rec = gpu.recorder();
  resizeImage(gpu, rec, { src: buffer, dst, inW: w, inH: h, outW: W, outH: H, format, scratch });
  const dispatches = rec.dispatchCount;
  rec.submit();
  const got = new Uint8Array(await readBytes(gpu, dst, W * H * 4));
  const ref = resizePil(img, W, H);
  const d = diffU8(got, ref);
  log(`resize ${format} ${w}x${h}→${W}x${H}: max |Δ| uint8 = ${d} (${dispatches} dispatches)`);
  if (d !== 0) throw new Error(`resize ${format} ${w}x${h}→${W}x${H}: max |Δ| uint8 = ${d}, expected bit-exact`);
  rec.destroy();
  arena.destroy();
  gpu.allocator.destroy(buffer);
  gpu.allocator.destroy(dst);
}

function config(tileSize: number, longestEdge: number, over: Partial<Idefics3ProcessorConfig> = {}): Idefics3ProcessorConfig {
  const cfg = parseProcessorConfig({
    size: { longest_edge: longestEdge }, max_image_size: { longest_edge: tileSize }, resample: 1, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
    rescale_factor: 1 / 255,
  }, { image_seq_len: 4 });
  return { ...cfg, ...over };
}

/** Inverse of the normalisation table per channel (strictly increasing for std > 0): f32 → the byte. */
function toBytes(x: Float32Array, lut: Float32Array, plane: number): Int32Array {
  const maps = [0, 1, 2].map((ch) => new Map<number, number>(Array.from({ length: 256 }, (_, v) => [lut[ch * 256 + v], v])));
  const out = new Int32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = maps[Math.floor(i / plane) % 3].get(x[i]) ?? -1000;
  return out;
}

async function checkChain({ gpu, log }: CaseContext, w: number, h: number, c: Channels, cfg: Idefics3ProcessorConfig, tiler: Tiler, seed: number) {
  const img = randomImage(w, h, c, seed);
  const plan = planImage(w, h, cfg, tiler);
  const M = cfg.tileSize;
  const per = 3 * M * M;
  const pad = 7; // write after a few floats to exercise outOffset
  const { buffer, format } = uploadImage(gpu, img);
  const out = gpu.allocator.create((pad + plan.frames * per) * 4);
  const { arena, scratch } = arenaScratch(gpu);
  const rec = gpu.recorder();
  const t0 = performance.now();
  preprocessImage(gpu, rec, { image: buffer, width: w, height: h, format, plan, config: cfg, out, outOffset: pad, scratch });
  const dispatches = rec.dispatchCount;
  rec.submit();
  const got = await readF32(gpu, out, plan.frames * per, pad);
  const gpuMs = performance.now() - t0;
  const t1 = performance.now();
  const ref = imagePixels(img, plan, cfg);
  const cpuMs = performance.now() - t1;
  const what = `${tiler} ${c}ch ${w}x${h} tile ${M}: ${plan.resizes.map((s) => `${s.width}x${s.height}`).join('→')}, ${plan.rows}x${plan.cols}+${plan.frames} frames`;
  const lut = normalizationTable({ rescaleFactor: cfg.rescaleFactor, mean: cfg.imageMean, std: cfg.imageStd, doRescale: cfg.doRescale, doNormalize: cfg.doNormalize });
  const gb = toBytes(got, lut, M * M), rb = toBytes(ref, lut, M * M);
  let du8 = 0;
  for (let i = 0; i < gb.length; i++) du8 = Math.max(du8, Math.abs(gb[i] - rb[i]));
  const s = assertClose(what, got, ref, { atol: 0, rtol: 0 }); // same integer pipeline and the same f32 table: bit-exact
  log(`${what}: max |Δ| uint8 = ${du8}, normalized f32 = ${s.maxAbs}; ${dispatches} dispatches; GPU ${gpuMs.toFixed(0)} ms (incl. readback), CPU ${cpuMs.toFixed(0)} ms`);
  rec.destroy();
  arena.destroy();
  gpu.allocator.destroy(buffer);
  gpu.allocator.destroy(out);
}

const T64 = config(64, 256);

export const cases = defineCases([
  // Single resizes vs resizePil (Pillow's Image.resize(LANCZOS); RGBA premultiplied; gray NEAREST).
  { name: 'rgba upscale 37x23→101x67', node: true, run: (c) => checkResize(c, 37, 23, 101, 67, 4, 1) },
  { name: 'rgba strong downscale 97x61→13x9', run: (c) => checkResize(c, 97, 61, 13, 9, 4, 2) },
  { name: 'rgb mixed 50x20→19x63 (down x, up y)', run: (c) => checkResize(c, 50, 20, 19, 63, 3, 3) },
  { name: 'rgb vertical only 40x30→40x11', run: (c) => checkResize(c, 40, 30, 40, 11, 3, 4) },
  { name: 'rgba horizontal only 40x30→83x30', run: (c) => checkResize(c, 40, 30, 83, 30, 4, 5) },
  { name: 'rgba extreme 1x300→3x41', run: (c) => checkResize(c, 1, 300, 3, 41, 4, 6) },
  { name: 'rgba extreme 300x1→64x5', run: (c) => checkResize(c, 300, 1, 64, 5, 4, 7) },
  { name: 'rgb extreme 300x1→7x1 and 1x300→1x2', run: async (c) => {
    await checkResize(c, 300, 1, 7, 1, 3, 8);
    await checkResize(c, 1, 300, 1, 2, 3, 9);
  } },
  { name: 'gray is NEAREST 19x7→50x33 and 19x7→5x3', run: async (c) => {
    await checkResize(c, 19, 7, 50, 33, 1, 10);
    await checkResize(c, 19, 7, 5, 3, 1, 11);
  } },
  { name: 'same size is a copy 17x9', run: (c) => checkResize(c, 17, 9, 17, 9, 4, 12) },
  { name: 'random ragged sizes (rgba/rgb)', run: async (c) => {
    const r = rng(77);
    for (let k = 0; k < 6; k++) {
      const s = () => 1 + Math.floor(r() * 70);
      await checkResize(c, s(), s(), s(), s(), k % 2 ? 3 : 4, 100 + k);
    }
  } },

  // Whole Idefics3 chains vs imagePixels (resize chain → tiles + global → convert_rgb → rescale/normalize).
  { name: 'chain model rgba 97x61 tile 64', node: true, run: (c) => checkChain(c, 97, 61, 4, T64, 'model', 20) },
  { name: 'chain model rgb 61x150 tile 64 (portrait, downscale+upscale)', run: (c) => checkChain(c, 61, 150, 3, config(64, 128), 'model', 21) },
  { name: 'chain model rgba 300x7 and 7x300 tile 64 (extreme aspect)', run: async (c) => {
    await checkChain(c, 300, 7, 4, T64, 'model', 22);
    await checkChain(c, 7, 300, 4, T64, 'model', 23);
  } },
  { name: 'chain model gray 45x33 tile 64 (NEAREST)', run: (c) => checkChain(c, 45, 33, 1, T64, 'model', 24) },
  { name: 'chain native 128x64 (no resize) and 300x200, global 90x70', run: async (c) => {
    await checkChain(c, 128, 64, 4, T64, 'native', 25);
    await checkChain(c, 300, 200, 3, T64, 'native', 26);
    await checkChain(c, 90, 70, 4, T64, 'global', 27);
  } },
  { name: 'chain rgba without convert_rgb or normalize', run: async (c) => {
    await checkChain(c, 77, 50, 4, config(64, 192, { doConvertRgb: false }), 'model', 28);
    await checkChain(c, 77, 50, 4, config(64, 192, { doNormalize: false, imageMean: [0.48, 0.46, 0.41], imageStd: [0.27, 0.26, 0.28] }), 'model', 29);
  } },
  // SmolVLM's tile size; a wide image keeps it to 1×2 tiles + a 1024×512 → 512×512 global frame (SwiftShader is slow).
  { name: 'chain model rgba 200x30 tile 512 (longest edge 1024)', run: (c) => checkChain(c, 200, 30, 4, config(512, 1024), 'model', 30) },

  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const img = randomImage(20, 10, 4, 1);
      const plan = planImage(20, 10, T64, 'model');
      const image = upload(gpu, packRgba(img).data);
      const out = gpu.allocator.create(plan.frames * 3 * 64 * 64 * 4);
      const { arena, scratch } = arenaScratch(gpu);
      const rec = gpu.recorder();
      const ok: PreprocessArgs = { image, width: 20, height: 10, plan, config: T64, out, scratch };
      const bad = (what: string, over: Partial<PreprocessArgs>, code: string) => expectReject(what, () => preprocessImage(gpu, rec, { ...ok, ...over }), code);
      await bad('size differs from the plan', { width: 21 }, 'InvalidArgument');
      await bad('zero width', { width: 0 }, 'ShapeMismatch');
      await bad('fractional height', { height: 2.5 }, 'ShapeMismatch');
      await bad('short image buffer', { image: gpu.allocator.create(20 * 10 * 4 - 4) }, 'BufferTooSmall');
      await bad('short out', { out: gpu.allocator.create(64) }, 'BufferTooSmall');
      await bad('out past outOffset', { outOffset: 1 }, 'BufferTooSmall');
      await bad('negative outOffset', { outOffset: -3 }, 'ShapeMismatch');
      await bad('out = image', { image: out }, 'InvalidArgument');
      await bad('unknown format', { format: 'bgra' as ImageFormat }, 'InvalidArgument');
      await bad('tile size differs', { config: { ...T64, tileSize: 32 } }, 'ShapeMismatch');
      await bad('plan frames inconsistent', { plan: { ...plan, frames: plan.frames + 1 } }, 'ShapeMismatch');
      await bad('plan grid inconsistent', { plan: { ...plan, cols: plan.cols + 1 } }, 'ShapeMismatch');
      await bad('resize step to 0', { plan: { ...plan, resizes: [{ width: 0, height: 5 }, ...plan.resizes] } }, 'ShapeMismatch');
      const dst = gpu.allocator.create(64);
      await expectReject('resize: short dst', () => resizeImage(gpu, rec, { src: image, dst, inW: 20, inH: 10, outW: 9, outH: 9, scratch }), 'BufferTooSmall');
      await expectReject('resize: target 0', () => resizeImage(gpu, rec, { src: image, dst, inW: 20, inH: 10, outW: 0, outH: 9, scratch }), 'ShapeMismatch');
      await expectReject('resize: src = dst', () => resizeImage(gpu, rec, { src: image, dst: image, inW: 20, inH: 10, outW: 5, outH: 5, scratch }), 'InvalidArgument');
      // Bindings that claim to be large enough, so the check on the temporaries is what fires.
      const huge = (buffer: GPUBuffer) => ({ buffer, size: 2 ** 34 });
      await expectReject('resize: image over the binding limit', () => resizeImage(gpu, rec, { src: huge(image), dst: huge(dst), inW: 60000, inH: 60000, outW: 60000, outH: 59999, scratch }), 'OutOfMemory');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      arena.destroy();
      gpu.allocator.destroy(image);
      gpu.allocator.destroy(out);
      gpu.allocator.destroy(dst);
    },
  },
]);
