/**
 * Idefics3 (SmolVLM) on the GPU: SigLIP tower → pixel-shuffle connector → Llama decoder, with image
 * features scattered into the `<image>` token positions of the prompt (transformers `inputs_merger`:
 * the i-th run of image tokens takes the features in order) during the prefill only.
 */
import { WebVLMError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import type { Arena } from '../../gpu/buffers.ts';
import { readF32, readU32, upload } from '../../gpu/io.ts';
import type { Recorder } from '../../gpu/recorder.ts';
import { argmax, buildSeenMask, checkSelectedToken } from '../../kernels/sampling.ts';
import { pixelShuffle } from '../../kernels/pixel_shuffle.ts';
import { compress as compressTokens } from '../../kernels/compress.ts';
import { preprocessImage, uploadImage } from '../../kernels/resample.ts';
import type { PixelImage } from '../../input/resample.ts';
import type { ImagePlan, PixelPipeline } from '../../input/image-plan.ts';
import { linear, linearBytes, Workspace } from '../layers.ts';
import { siglipForward } from '../siglip.ts';
import { embedTokens, KvCache, llamaForward } from '../llama.ts';
import type { Idefics3Config } from './config.ts';
import { idefics3Plan, idefics3Weights, type Idefics3Weights } from './plan.ts';
import { PlanLoader } from '../plan-loader.ts';
import type { WeightFormats } from '../plan.ts';
import type { TensorSource, VisionLanguageModel } from '../family.ts';

export type { TensorSource };

/** Bytes the vision pass may put in one activation buffer (see `visionChunkFrames`). */
export const VISION_CHUNK_BYTES = 64 << 20;

/** Frames encoded per chunk: the widest vision activation ([P, max(I, 3D, D·s²)] per frame) stays ≤ 64 MiB and one binding. */
export function visionChunkFrames(cfg: Idefics3Config, maxBinding = Infinity): number {
  const v = cfg.vision;
  const perFrame = v.numPatches * Math.max(v.intermediateSize, 3 * v.hiddenSize, v.hiddenSize * cfg.scaleFactor ** 2) * 4;
  return Math.max(1, Math.floor(Math.min(maxBinding, VISION_CHUNK_BYTES) / perFrame));
}

export class Idefics3Model implements VisionLanguageModel {
  private constructor(
    readonly gpu: GpuContext,
    readonly cfg: Idefics3Config,
    readonly weights: Idefics3Weights,
    private readonly arena: Arena,
    readonly formats: WeightFormats,
  ) {}

  /** Builds the model from streamed tensors (in any order). */
  static async load(gpu: GpuContext, cfg: Idefics3Config, tensors: AsyncIterable<TensorSource>, formats: WeightFormats): Promise<Idefics3Model> {
    const arena = gpu.arena('weights');
    try {
      const loader = new PlanLoader(gpu, arena, idefics3Plan(cfg), formats);
      for await (const t of tensors) loader.put(t.name, t.shape, t.values);
      const weights = idefics3Weights(loader.finish(), cfg);
      await gpu.sync();
      return new Idefics3Model(gpu, cfg, weights, arena, formats);
    } catch (e) {
      arena.destroy();
      throw e;
    }
  }

  get weightBytes(): number {
    return this.arena.bytes;
  }

  /** Weight bytes one decode step reads: every text layer, the final norm and lm_head (one embedding row aside). */
  get textWeightBytes(): number {
    const t = this.weights.text;
    let n = linearBytes(t.lmHead) + t.norm.size;
    for (const L of t.layers) n += linearBytes(L.qkv) + linearBytes(L.o) + linearBytes(L.gateUp) + linearBytes(L.down) + L.inputNorm.size + L.postNorm.size;
    return n;
  }

  /** Visual tokens one frame becomes. */
  get tokensPerFrame(): number {
    return this.cfg.vision.numPatches / (this.cfg.scaleFactor * this.cfg.scaleFactor);
  }

  newCache(capacity: number): KvCache {
    return new KvCache(this.gpu, this.cfg.text, capacity);
  }

  /** Visual tokens per frame after low-resolution-query compression by `factor` (1 = none). */
  compressedTokensPerFrame(factor: number): number {
    const side = Math.sqrt(this.tokensPerFrame);
    return Math.ceil(side / factor) ** 2;
  }

  /**
   * Encodes one image's frames (normalized pixels [frames, 3, S, S], S = vision image_size) into
   * features [frames · tokensPerFrame, textHidden] on the GPU. The caller destroys the buffer.
   * `compress` > 1 runs the low-resolution-query compression on each frame's connector output
   * (its side×side grid of text-width tokens → ⌈side/compress⌉² tokens; see src/kernels/compress.md):
   * parameter-free and training-free, heads = the text model's heads (head_dim 64).
   */
  async encodeImage(pixels: Float32Array, frames: number, compress = 1): Promise<GPUBuffer> {
    const v = this.cfg.vision;
    const size = v.imageSize;
    this.checkCompression(compress);
    if (pixels.length !== frames * 3 * size * size) {
      throw new WebVLMError('ShapeMismatch', `encodeImage: ${pixels.length} values for ${frames} frames of 3×${size}×${size}.`);
    }
    const gpu = this.gpu;
    const ws = new Workspace(gpu);
    const rec = gpu.recorder('vision');
    const pixelBuf = upload(gpu, pixels, 'vision/pixels');
    try {
      return await this.encodePixels(rec, ws, pixelBuf, frames, compress);
    } finally {
      rec.destroy();
      ws.release();
      gpu.allocator.destroy(pixelBuf);
    }
  }

  /**
   * `encodeImage` from the decoded image (RGBA, RGB or gray uint8; 4 B/px uploaded): the processor's
   * resize chain, tiling and normalisation run on the GPU (kernels/resample.ts, bit-exact with the CPU
   * `imagePixels`), straight into the buffer the vision tower reads. `plan` comes from the processor.
   */
  async encodeImageRgba(image: PixelImage, plan: ImagePlan, processorConfig: PixelPipeline, compress = 1): Promise<GPUBuffer> {
    const size = this.cfg.vision.imageSize;
    this.checkCompression(compress);
    if (processorConfig.tileSize !== size) {
      throw new WebVLMError('ShapeMismatch', `encodeImageRgba: the processor's tile is ${processorConfig.tileSize}, the vision tower takes ${size}.`);
    }
    const gpu = this.gpu;
    const ws = new Workspace(gpu);
    const rec = gpu.recorder('vision');
    const img = uploadImage(gpu, image, 'vision/rgba');
    try {
      const pixelBuf = ws.f32(plan.frames * 3 * size * size, 'vision/pixels');
      preprocessImage(gpu, rec, { ...img, image: img.buffer, plan, config: processorConfig, out: pixelBuf, scratch: (bytes, label) => ws.f32(Math.ceil(bytes / 4), label) });
      return await this.encodePixels(rec, ws, pixelBuf, plan.frames, compress);
    } finally {
      rec.destroy();
      ws.release();
      gpu.allocator.destroy(img.buffer);
    }
  }

  private checkCompression(compress: number): void {
    if (!(Number.isInteger(compress) && compress >= 1 && compress <= Math.sqrt(this.tokensPerFrame))) {
      throw new WebVLMError('InvalidArgument', `compression factor ${compress} must be an integer from 1 to ${Math.sqrt(this.tokensPerFrame)}.`);
    }
  }

  /** Vision tower + connector (+ compression) on normalized pixels already on the GPU; records into `rec`, submits, waits. */
  private async encodePixels(rec: Recorder, ws: Workspace, pixelBuf: GPUBuffer, frames: number, compress: number): Promise<GPUBuffer> {
    const gpu = this.gpu;
    const v = this.cfg.vision;
    const s = this.cfg.scaleFactor, D = v.hiddenSize, side = v.patchesPerSide;
    const T = this.tokensPerFrame;
    const Ht = this.cfg.text.hiddenSize;
    const outPerFrame = compress > 1 ? this.compressedTokensPerFrame(compress) : T;
    const features = gpu.allocator.create(frames * outPerFrame * Ht * 4, undefined, 'image-features');
    const chunk = this.framesPerChunk(outPerFrame);
    try {
      // Frames are encoded in chunks, each its own submission with its own activations (recycled between
      // chunks): the largest activation stays under the binding limit and the memory budget however many
      // tiles an image has, and an abort between chunks takes effect within one chunk.
      for (let f0 = 0; f0 < frames; f0 += chunk) {
        const n = Math.min(chunk, frames - f0);
        const cws = new Workspace(gpu);
        const crec = f0 === 0 ? rec : gpu.recorder('vision');
        try {
          const pixels = { buffer: pixelBuf, offset: f0 * 3 * v.imageSize * v.imageSize * 4, size: n * 3 * v.imageSize * v.imageSize * 4 };
          const hidden = siglipForward(gpu, crec, cws, this.weights.vision, v, pixels, n);
          const shuffled = cws.f32(n * T * D * s * s, 'connector/shuffled');
          pixelShuffle(gpu, crec, { x: hidden, out: shuffled, frames: n, h: side, w: side, D, s });
          const out = { buffer: features, offset: f0 * outPerFrame * Ht * 4, size: n * outPerFrame * Ht * 4 };
          if (compress > 1) {
            const full = cws.f32(n * T * Ht, 'connector/out');
            linear(gpu, crec, this.weights.connector, shuffled, full, n * T);
            const sideT = Math.sqrt(T);
            compressTokens(gpu, crec, { x: full, out, F: n, H: sideT, W: sideT, C: Ht, heads: this.cfg.text.numAttentionHeads, s: compress });
          } else {
            linear(gpu, crec, this.weights.connector, shuffled, out, n * T);
          }
          crec.submit();
          await gpu.sync();
        } finally {
          cws.release();
          if (crec !== rec) crec.destroy();
        }
        gpu.assertAlive();
      }
    } catch (e) {
      gpu.allocator.destroy(features);
      throw e;
    }
    return features;
  }

  /**
   * Frames per encoder chunk: the largest activation (the MLP's [frames·P, I]) must fit one binding and
   * stay under 64 MiB; binding offsets of a chunk must meet the storage-offset alignment, else one chunk.
   */
  private framesPerChunk(outPerFrame: number): number {
    const v = this.cfg.vision;
    const limits = this.gpu.caps.limits;
    const align = limits.minStorageBufferOffsetAlignment;
    const aligned = (3 * v.imageSize * v.imageSize * 4) % align === 0 && (outPerFrame * this.cfg.text.hiddenSize * 4) % align === 0;
    if (!aligned) return Number.MAX_SAFE_INTEGER;
    return Math.min(this.maxFramesPerChunk, visionChunkFrames(this.cfg, limits.maxStorageBufferBindingSize));
  }

  /** Upper bound on frames per vision chunk (tests lower it to exercise chunking on small models). */
  maxFramesPerChunk = Number.MAX_SAFE_INTEGER;

  /**
   * Runs `ids` (positions cache.length…) through the decoder. `<image>` positions take rows of `imageFeatures`
   * in order (all images' features concatenated in prompt order). Returns the logits of the last `logitRows`.
   */
  async forward(ids: number[], cache: KvCache, imageFeatures: GPUBuffer[] = [], logitRows = 1): Promise<Float32Array> {
    const V = this.cfg.text.vocabSize;
    const rows = Math.min(logitRows, ids.length);
    return this.run(ids, cache, imageFeatures, rows, async (_rec, logits) => readF32(this.gpu, logits, rows * V));
  }

  /**
   * Like `forward`, but picks the greedy next token on the GPU (argmax after HF's repetition penalty over the
   * tokens marked in `seen`, a bitmask from `newSeenMask`, which this call updates) and reads back 4 bytes.
   */
  async forwardArgmax(ids: number[], cache: KvCache, imageFeatures: GPUBuffer[] = [], penalty = 1, seen?: GPUBuffer): Promise<number> {
    const V = this.cfg.text.vocabSize;
    return this.run(ids, cache, imageFeatures, 1, async (rec, logits, ws) => {
      const out = ws.f32(1, 'text/token');
      argmax(this.gpu, rec, { logits, out, V, penalty, seen, markSeen: seen !== undefined, strict: true });
      rec.submit();
      // A row of NaN logits gives SAMPLE_NONE: a typed error here, never a token id.
      return checkSelectedToken((await readU32(this.gpu, out, 1))[0], V);
    }, true);
  }

  /** A GPU bitmask of seen token ids for `forwardArgmax`'s repetition penalty. The caller destroys it. */
  newSeenMask(ids: ArrayLike<number>): GPUBuffer {
    return upload(this.gpu, buildSeenMask(ids, this.cfg.text.vocabSize), 'seen-mask');
  }

  private async run<T>(ids: number[], cache: KvCache, imageFeatures: GPUBuffer[], rows: number, finish: (rec: Recorder, logits: GPUBuffer, ws: Workspace) => Promise<T>, recordMore = false): Promise<T> {
    const gpu = this.gpu;
    gpu.assertAlive();
    const t = this.cfg.text;
    const H = t.hiddenSize, S = ids.length;
    if (S === 0) throw new WebVLMError('InvalidArgument', 'forward: no tokens.');
    const ws = new Workspace(gpu);
    const rec = gpu.recorder('text');
    try {
      const h = ws.f32(S * H, 'text/h');
      embedTokens(gpu, rec, this.weights.text, ids, ws.f32(S, 'text/ids'), h);
      this.mergeImageFeatures(rec, ids, h, imageFeatures);
      const logits = ws.f32(rows * t.vocabSize, 'text/logits');
      llamaForward(gpu, rec, ws, this.weights.text, t, cache, h, S, cache.length, logits, rows);
      if (!recordMore) rec.submit();
      const out = await finish(rec, logits, ws);
      cache.length += S;
      cache.tokens.push(...ids);
      return out;
    } finally {
      rec.destroy();
      ws.release();
    }
  }

  private mergeImageFeatures(rec: Recorder, ids: number[], h: GPUBuffer, features: GPUBuffer[]): void {
    // No features (a decode step, or a text-only prompt): an <image> id keeps its own embedding. transformers merges
    // only when image features are passed (the first step), so a generated <image> token is an ordinary token.
    if (!features.length) return;
    const H = this.cfg.text.hiddenSize;
    const img = this.cfg.imageTokenId;
    const available = features.reduce((s, f) => s + f.size / (H * 4), 0);
    let count = 0;
    for (const id of ids) if (id === img) count++;
    if (count !== available) {
      throw new WebVLMError('InvalidArgument', `The prompt has ${count} <image> tokens but the images give ${available} feature rows.`, { details: { tokens: count, features: available } });
    }
    let fi = 0, frow = 0;
    for (let s = 0; s < ids.length; ) {
      if (ids[s] !== img) {
        s++;
        continue;
      }
      let run = 0;
      while (s + run < ids.length && ids[s + run] === img) run++;
      // Copy the run, possibly spanning several images' feature buffers.
      let done = 0;
      while (done < run) {
        const buf = features[fi];
        const rowsLeft = buf.size / (H * 4) - frow;
        const n = Math.min(rowsLeft, run - done);
        rec.copy(buf, frow * H * 4, h, (s + done) * H * 4, n * H * 4);
        done += n;
        frow += n;
        if (frow === buf.size / (H * 4)) {
          fi++;
          frow = 0;
        }
      }
      s += run;
    }
  }

  destroy(): void {
    this.arena.destroy();
  }
}
