/**
 * The glue every vision-language family shares, written once: loading a tensor plan into GPU weights, the KV cache,
 * merging visual features into the token embeddings (the i-th run of image tokens takes the features in order, as
 * transformers' mergers do; only when features are passed — a generated image token keeps its own embedding), the
 * decoder forward over prefill and decode, and the greedy choice on the GPU. A family's model extends
 * `DecoderVlm` with its vision path (pixels → features).
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Arena } from '../gpu/buffers.ts';
import { readF32, readU32, upload } from '../gpu/io.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { argmax, buildSeenMask, checkSelectedToken } from '../kernels/sampling.ts';
import { linearBytes, Workspace } from './layers.ts';
import { embedTokens, KvCache, llamaForward, type DecoderConfig, type LlamaWeights } from './llama.ts';
import { PlanLoader, type LoadedTargets } from './plan-loader.ts';
import type { TensorPlan, WeightFormats } from './plan.ts';
import type { TensorSource } from './family.ts';

/** Streams `tensors` into the plan's targets and assembles the family's weights; the arena is freed on failure. */
export async function loadPlanned<W>(gpu: GpuContext, plan: TensorPlan, tensors: AsyncIterable<TensorSource>, formats: WeightFormats, assemble: (t: LoadedTargets) => W): Promise<{ arena: Arena; weights: W }> {
  const arena = gpu.arena('weights');
  try {
    const loader = new PlanLoader(gpu, arena, plan, formats);
    for await (const t of tensors) loader.put(t.name, t.shape, t.values);
    const weights = assemble(loader.finish());
    await gpu.sync();
    return { arena, weights };
  } catch (e) {
    arena.destroy();
    throw e;
  }
}

export abstract class DecoderVlm<C extends { text: DecoderConfig & { vocabSize: number }; imageTokenId: number }, W extends { text: LlamaWeights }> {
  /** Upper bound on frames per vision chunk (tests lower it to exercise chunking on small models). */
  maxFramesPerChunk = Number.MAX_SAFE_INTEGER;

  protected constructor(
    readonly gpu: GpuContext,
    readonly cfg: C,
    readonly weights: W,
    protected readonly arena: Arena,
    readonly formats: WeightFormats,
    /** The image token as the prompt writes it, for messages. */
    private readonly imageTokenName: string,
  ) {}

  /** Visual tokens one frame becomes. */
  abstract get tokensPerFrame(): number;

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

  /** Visual tokens per frame after low-resolution-query compression by `factor` (1 = none): ⌈side/factor⌉². */
  compressedTokensPerFrame(factor: number): number {
    return Math.ceil(Math.sqrt(this.tokensPerFrame) / factor) ** 2;
  }

  newCache(capacity: number): KvCache {
    return new KvCache(this.gpu, this.cfg.text, capacity);
  }

  /**
   * Runs `ids` (positions cache.length…) through the decoder. Image-token positions take rows of `imageFeatures`
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
      // A non-finite logit gives SAMPLE_NONE: a typed error here, never a token id.
      return checkSelectedToken((await readU32(this.gpu, out, 1))[0], V);
    }, true);
  }

  /** A GPU bitmask of seen token ids for `forwardArgmax`'s repetition penalty. The caller destroys it. */
  newSeenMask(ids: ArrayLike<number>): GPUBuffer {
    return upload(this.gpu, buildSeenMask(ids, this.cfg.text.vocabSize), 'seen-mask');
  }

  destroy(): void {
    this.arena.destroy();
  }

  private async run<T>(ids: number[], cache: KvCache, imageFeatures: GPUBuffer[], rows: number, finish: (rec: Recorder, logits: GPUBuffer, ws: Workspace) => Promise<T>, recordMore = false): Promise<T> {
    const gpu = this.gpu;
    gpu.assertAlive();
    const t = this.cfg.text, H = t.hiddenSize, S = ids.length;
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
    // No features (a decode step, or a text-only prompt): an image-token id keeps its own embedding. transformers merges
    // only when image features are passed (the first step), so a generated image token is an ordinary token.
    if (!features.length) return;
    const rowBytes = this.cfg.text.hiddenSize * 4;
    const img = this.cfg.imageTokenId;
    const available = features.reduce((s, f) => s + f.size / rowBytes, 0);
    let count = 0;
    for (const id of ids) if (id === img) count++;
    if (count !== available) {
      throw new WebVLMError('InvalidArgument', `The prompt has ${count} ${this.imageTokenName} tokens but the images give ${available} feature rows.`, { details: { tokens: count, features: available } });
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
        const n = Math.min(buf.size / rowBytes - frow, run - done);
        rec.copy(buf, frow * rowBytes, h, (s + done) * rowBytes, n * rowBytes);
        done += n;
        frow += n;
        if (frow === buf.size / rowBytes) {
          fi++;
          frow = 0;
        }
      }
      s += run;
    }
  }
}
