/**
 * Idefics3 (SmolVLM) on the GPU: SigLIP tower → pixel-shuffle connector → Llama decoder, with image
 * features scattered into the `<image>` token positions of the prompt (transformers `inputs_merger`:
 * the i-th run of image tokens takes the features in order) during the prefill only.
 */
import { WebVLMError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { upload } from '../../gpu/io.ts';
import type { Recorder } from '../../gpu/recorder.ts';
import { pixelShuffle } from '../../kernels/pixel_shuffle.ts';
import { compress as compressTokens } from '../../kernels/compress.ts';
import { preprocessImage, uploadImage } from '../../kernels/resample.ts';
import type { PixelImage } from '../../input/resample.ts';
import type { ImagePlan, PixelPipeline } from '../../input/image-plan.ts';
import { linear, Workspace } from '../layers.ts';
import { siglipForward } from '../siglip.ts';
import type { Idefics3Config } from './config.ts';
import { idefics3Plan, idefics3Weights, type Idefics3Weights } from './plan.ts';
import { DecoderVlm, loadPlanned } from '../vlm.ts';
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

export class Idefics3Model extends DecoderVlm<Idefics3Config, Idefics3Weights> implements VisionLanguageModel {
  /** Builds the model from streamed tensors (in any order). */
  static async load(gpu: GpuContext, cfg: Idefics3Config, tensors: AsyncIterable<TensorSource>, formats: WeightFormats): Promise<Idefics3Model> {
    const { arena, weights } = await loadPlanned(gpu, idefics3Plan(cfg), tensors, formats, (t) => idefics3Weights(t, cfg));
    return new Idefics3Model(gpu, cfg, weights, arena, formats, '<image>');
  }

  /** Visual tokens one frame becomes. */
  get tokensPerFrame(): number {
    return this.cfg.vision.numPatches / (this.cfg.scaleFactor * this.cfg.scaleFactor);
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
}
