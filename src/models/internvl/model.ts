/**
 * InternVL on the GPU: InternViT (the shared ViT with a class token, layer scale, exact GELU, q/k/v bias; class token
 * dropped) → pixel shuffle → projector (LayerNorm → Linear → GELU → Linear: `mlp1` / `multi_modal_projector`) → Qwen2
 * decoder (the shared Llama-style decoder; its q/k/v biases come from the plan's fused target), with the image
 * features scattered into the `<IMG_CONTEXT>` positions in order (`input_embeds[selected] = vit_embeds`, the same in
 * `InternVLChatModel.generate` and transformers' `masked_scatter`) during the prefill only.
 *
 * Pixel shuffle: InternVL's `pixel_shuffle` with ps_version v2 (view (n, w, h·s, c/s) → permute → view → permute
 * back) on the √P × √P grid gives out[I·(w/2)+J, (di·2+dj)·D+d] = x[(I·2+di)·w + J·2+dj, d]: the index order of
 * kernels/pixel_shuffle.ts (written for Idefics3), so the kernel is used as is with s = 2.
 */
import { WebVLMError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { upload } from '../../gpu/io.ts';
import type { Binding, Recorder } from '../../gpu/recorder.ts';
import { pixelShuffle } from '../../kernels/pixel_shuffle.ts';
import { layerNorm } from '../../kernels/norm.ts';
import { gelu } from '../../kernels/elementwise.ts';
import { compress as compressTokens } from '../../kernels/compress.ts';
import type { PixelImage } from '../../input/resample.ts';
import type { ImagePlan, PixelPipeline } from '../../input/image-plan.ts';
import { linear, Workspace } from '../layers.ts';
import { vitForward } from '../siglip.ts';
import type { WeightFormats } from '../plan.ts';
import type { TensorSource, VisionLanguageModel } from '../family.ts';
import type { InternVLConfig } from './config.ts';
import { internvlPlan, internvlWeights, type InternVLWeights } from './plan.ts';
import { DecoderVlm, loadPlanned } from '../vlm.ts';
import { imagePixels, type InternVLProcessorConfig } from './processor.ts';

/** nn.LayerNorm's default eps: `mlp1[0]` and `multi_modal_projector.layer_norm` are built without one. */
const PROJECTOR_LN_EPS = 1e-5;
export const VISION_CHUNK_BYTES = 64 << 20;

/** Frames per vision chunk: the widest activation ([P + 1, max(I, 3D, 4D)] per frame) stays ≤ 64 MiB and one binding. */
export function internvlChunkFrames(cfg: InternVLConfig, maxBinding = Infinity): number {
  const v = cfg.vision;
  const perFrame = (v.numPatches + 1) * Math.max(v.intermediateSize, 3 * v.hiddenSize, cfg.connectorInputSize) * 4;
  return Math.max(1, Math.floor(Math.min(maxBinding, VISION_CHUNK_BYTES) / perFrame));
}

export class InternVLModel extends DecoderVlm<InternVLConfig, InternVLWeights> implements VisionLanguageModel {
  static async load(gpu: GpuContext, cfg: InternVLConfig, tensors: AsyncIterable<TensorSource>, formats: WeightFormats): Promise<InternVLModel> {
    const { arena, weights } = await loadPlanned(gpu, internvlPlan(cfg), tensors, formats, (t) => internvlWeights(t, cfg));
    return new InternVLModel(gpu, cfg, weights, arena, formats, '<IMG_CONTEXT>');
  }

  get tokensPerFrame(): number {
    return this.cfg.imageSeqLen;
  }

  async encodeImage(pixels: Float32Array, frames: number, compress = 1): Promise<GPUBuffer> {
    const size = this.cfg.vision.imageSize;
    this.checkCompression(compress);
    if (pixels.length !== frames * 3 * size * size) throw new WebVLMError('ShapeMismatch', `encodeImage: ${pixels.length} values for ${frames} frames of 3×${size}×${size}.`);
    const pixelBuf = upload(this.gpu, pixels, 'vision/pixels');
    try {
      return await this.encodePixels(pixelBuf, frames, compress);
    } finally {
      this.gpu.allocator.destroy(pixelBuf);
    }
  }

  /**
   * From the decoded image: InternVL's preprocessing (RGB, BICUBIC, ToTensor/rescale arithmetic) runs on the CPU here
   * (processor.ts `imagePixels`) — the GPU resampler (kernels/resample.ts) implements Lanczos/nearest only.
   */
  async encodeImageRgba(image: PixelImage, plan: ImagePlan, pixels: PixelPipeline, compress = 1): Promise<GPUBuffer> {
    const cfg = pixels as InternVLProcessorConfig;
    if (cfg.layout === undefined || cfg.tileSize !== this.cfg.vision.imageSize) {
      throw new WebVLMError('ShapeMismatch', `encodeImageRgba: the pixel pipeline is not this InternVL processor's (tile ${pixels.tileSize}, tower ${this.cfg.vision.imageSize}).`);
    }
    return this.encodeImage(imagePixels(image, plan, cfg), plan.frames, compress);
  }

  private checkCompression(compress: number): void {
    const side = Math.sqrt(this.tokensPerFrame);
    if (!(Number.isInteger(compress) && compress >= 1 && compress <= side)) throw new WebVLMError('InvalidArgument', `compression factor ${compress} must be an integer from 1 to ${side}.`);
  }

  private async encodePixels(pixelBuf: GPUBuffer, frames: number, compress: number): Promise<GPUBuffer> {
    const gpu = this.gpu, v = this.cfg.vision, w = this.weights;
    const D = v.hiddenSize, side = v.patchesPerSide, s = this.cfg.scaleFactor, T = this.tokensPerFrame, Ht = this.cfg.text.hiddenSize;
    const C4 = this.cfg.connectorInputSize;
    const outPerFrame = compress > 1 ? this.compressedTokensPerFrame(compress) : T;
    const features = gpu.allocator.create(frames * outPerFrame * Ht * 4, undefined, 'image-features');
    const chunk = this.framesPerChunk(outPerFrame);
    const frameBytes = 3 * v.imageSize * v.imageSize * 4;
    try {
      for (let f0 = 0; f0 < frames; f0 += chunk) {
        const n = Math.min(chunk, frames - f0);
        const ws = new Workspace(gpu);
        const rec: Recorder = gpu.recorder('vision');
        try {
          const px: Binding = { buffer: pixelBuf, offset: f0 * frameBytes, size: n * frameBytes };
          const hidden = vitForward(gpu, rec, ws, w.vision, v, px, n);
          const shuffled = ws.f32(n * T * C4, 'projector/shuffled');
          pixelShuffle(gpu, rec, { x: hidden, out: shuffled, frames: n, h: side, w: side, D, s });
          const normed = ws.f32(n * T * C4, 'projector/norm');
          layerNorm(gpu, rec, { x: shuffled, weight: w.projNorm.weight, bias: w.projNorm.bias, out: normed, rows: n * T, D: C4, eps: PROJECTOR_LN_EPS });
          const mid = ws.f32(n * T * Ht, 'projector/mid');
          linear(gpu, rec, w.proj1, normed, mid, n * T);
          gelu(gpu, rec, { x: mid, n: n * T * Ht });
          const out: Binding = { buffer: features, offset: f0 * outPerFrame * Ht * 4, size: n * outPerFrame * Ht * 4 };
          if (compress > 1) {
            const full = ws.f32(n * T * Ht, 'projector/out');
            linear(gpu, rec, w.proj2, mid, full, n * T);
            const sideT = Math.sqrt(T);
            compressTokens(gpu, rec, { x: full, out, F: n, H: sideT, W: sideT, C: Ht, heads: this.cfg.text.numAttentionHeads, s: compress });
          } else {
            linear(gpu, rec, w.proj2, mid, out, n * T);
          }
          rec.submit();
          await gpu.sync();
        } finally {
          ws.release();
          rec.destroy();
        }
        gpu.assertAlive();
      }
    } catch (e) {
      gpu.allocator.destroy(features);
      throw e;
    }
    return features;
  }

  private framesPerChunk(outPerFrame: number): number {
    const v = this.cfg.vision, limits = this.gpu.caps.limits, align = limits.minStorageBufferOffsetAlignment;
    const aligned = (3 * v.imageSize * v.imageSize * 4) % align === 0 && (outPerFrame * this.cfg.text.hiddenSize * 4) % align === 0;
    if (!aligned) return Number.MAX_SAFE_INTEGER;
    return Math.min(this.maxFramesPerChunk, internvlChunkFrames(this.cfg, limits.maxStorageBufferBindingSize));
  }
}
