/**
 * Idefics3 (SmolVLM) on the GPU: SigLIP tower → pixel-shuffle connector → Llama decoder, with image
 * features scattered into the `<image>` token positions of the prompt (transformers `inputs_merger`:
 * the i-th run of image tokens takes the features in order) during the prefill only.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Arena } from '../gpu/buffers.ts';
import { readF32, upload } from '../gpu/io.ts';
import { copy2d } from '../kernels/elementwise.ts';
import { linear, Workspace } from './layers.ts';
import { patchify, siglipForward } from './siglip.ts';
import { embedTokens, KvCache, llamaForward } from './llama.ts';
import type { Idefics3Config } from './idefics3-config.ts';
import { Idefics3WeightLoader, type Idefics3Weights, type WeightFormat } from './idefics3-weights.ts';

export interface TensorSource {
  name: string;
  shape: number[];
  /** f32 values. */
  values: Float32Array;
}

export class Idefics3Model {
  private constructor(
    readonly gpu: GpuContext,
    readonly cfg: Idefics3Config,
    readonly weights: Idefics3Weights,
    private readonly arena: Arena,
    readonly format: WeightFormat,
  ) {}

  /** Builds the model from streamed tensors (in any order). */
  static async load(gpu: GpuContext, cfg: Idefics3Config, tensors: AsyncIterable<TensorSource>, format: WeightFormat): Promise<Idefics3Model> {
    const arena = gpu.arena('weights');
    try {
      const loader = new Idefics3WeightLoader(gpu, arena, cfg, format);
      for await (const t of tensors) loader.put(t.name, t.shape, t.values);
      const weights = loader.finish();
      await gpu.sync();
      return new Idefics3Model(gpu, cfg, weights, arena, format);
    } catch (e) {
      arena.destroy();
      throw e;
    }
  }

  get weightBytes(): number {
    return this.arena.bytes;
  }

  /** Visual tokens one frame becomes. */
  get tokensPerFrame(): number {
    return this.cfg.vision.numPatches / (this.cfg.scaleFactor * this.cfg.scaleFactor);
  }

  newCache(capacity: number): KvCache {
    return new KvCache(this.gpu, this.cfg.text, capacity);
  }

  /**
   * Encodes one image's frames (normalized pixels [frames, 3, S, S], S = vision image_size) into
   * features [frames · tokensPerFrame, textHidden] on the GPU. The caller destroys the buffer.
   */
  async encodeImage(pixels: Float32Array, frames: number): Promise<GPUBuffer> {
    const v = this.cfg.vision;
    const size = v.imageSize;
    if (pixels.length !== frames * 3 * size * size) {
      throw new WebVLMError('ShapeMismatch', `encodeImage: ${pixels.length} values for ${frames} frames of 3×${size}×${size}.`);
    }
    const gpu = this.gpu;
    const ws = new Workspace(gpu);
    const rec = gpu.recorder('vision');
    const patches = upload(gpu, patchify(pixels, frames, size, v.patchSize), 'vision/patches');
    try {
      const hidden = siglipForward(gpu, rec, ws, this.weights.vision, v, patches, frames);
      const s = this.cfg.scaleFactor, D = v.hiddenSize, side = v.patchesPerSide;
      const T = this.tokensPerFrame;
      const shuffled = ws.f32(frames * T * D * s * s, 'connector/shuffled');
      pixelShuffle(gpu, rec, hidden, shuffled, frames, side, D, s);
      const features = gpu.allocator.create(frames * T * this.cfg.text.hiddenSize * 4, undefined, 'image-features');
      linear(gpu, rec, this.weights.connector, shuffled, features, frames * T);
      rec.submit();
      await gpu.sync();
      return features;
    } finally {
      rec.destroy();
      ws.release();
      gpu.allocator.destroy(patches);
    }
  }

  /**
   * Runs `ids` (positions cache.length…) through the decoder. `<image>` positions take rows of `imageFeatures`
   * in order (all images' features concatenated in prompt order). Returns the logits of the last `logitRows`.
   */
  async forward(ids: number[], cache: KvCache, imageFeatures: GPUBuffer[] = [], logitRows = 1): Promise<Float32Array> {
    const gpu = this.gpu;
    gpu.assertAlive();
    const t = this.cfg.text;
    const H = t.hiddenSize, S = ids.length;
    if (S === 0) throw new WebVLMError('InvalidArgument', 'forward: no tokens.');
    const ws = new Workspace(gpu);
    const rec = gpu.recorder('text');
    try {
      const h = ws.f32(S * H, 'text/h');
      embedTokens(rec, this.weights.text, H, ids, h, t.vocabSize);
      this.mergeImageFeatures(rec, ids, h, imageFeatures);
      const rows = Math.min(logitRows, S);
      const logits = ws.f32(rows * t.vocabSize, 'text/logits');
      llamaForward(gpu, rec, ws, this.weights.text, t, cache, h, S, cache.length, logits, rows);
      rec.submit();
      const out = await readF32(gpu, logits, rows * t.vocabSize);
      cache.length += S;
      cache.tokens.push(...ids);
      return out;
    } finally {
      rec.destroy();
      ws.release();
    }
  }

  private mergeImageFeatures(rec: ReturnType<GpuContext['recorder']>, ids: number[], h: GPUBuffer, features: GPUBuffer[]): void {
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

/**
 * Idefics3 pixel shuffle, per frame: out[I·(w/s)+J, (di·s+dj)·D + d] = x[(I·s+di)·w + J·s+dj, d].
 * For fixed (I, di) the source rows (I·s+di)·w … +w are contiguous and land as w/s output rows of s·D
 * values at column di·s·D: one strided 2-D copy each.
 */
function pixelShuffle(gpu: GpuContext, rec: ReturnType<GpuContext['recorder']>, x: GPUBuffer, out: GPUBuffer, frames: number, side: number, D: number, s: number): void {
  const w = side, T = (side / s) * (side / s);
  for (let f = 0; f < frames; f++)
    for (let I = 0; I < side / s; I++)
      for (let di = 0; di < s; di++) {
        copy2d(gpu, rec, {
          src: x, dst: out, rows: w / s, cols: s * D, srcStride: s * D, dstStride: s * s * D,
          srcOffset: (f * side * side + (I * s + di) * w) * D, dstOffset: (f * T + I * (w / s)) * s * s * D + di * s * D,
        });
      }
}
