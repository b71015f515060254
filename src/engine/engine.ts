/**
 * The engine: one loaded model, one conversation KV cache, one request at a time (later requests queue).
 * `chat()` renders the chat template, expands and encodes images, reuses the KV cache for the longest
 * prefix the new prompt shares with what the cache holds (same tokens and same images), prefills the
 * rest, then decodes token by token with streaming text, stop strings, abort and usage figures.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { ChatDelta, FinishReason, ImagePlanReport, ImageReport, Usage } from '../types.ts';
import type { ChatMessage } from '../input/tokenizer.ts';
import type { PixelImage } from '../input/resample.ts';
import { detailToPlanOptions, type ImageDetail } from '../input/image-plan.ts';
import type { ChatProcessor } from '../models/family.ts';
import type { KvCache } from '../models/llama.ts';
import { loadModel, type LoadedModel, type LoadOptions } from './load.ts';
import { Rng } from './rng.ts';
import { sampleToken, validateSampling, type SamplingParams } from './sampler.ts';
import { StopMatcher } from './stop.ts';
import { digestHex } from './sha256.ts';
import { DEFAULT_CONTEXT, validateGeneration, validateLoadOptions } from './validate.ts';
import { DeltaBuffer } from './delta-buffer.ts';
import { Turns } from './turns.ts';

export interface EngineChatRequest extends SamplingParams {
  messages: ChatMessage[];
  /** Decoded pixels of the messages' image parts, in order. */
  images?: PixelImage[];
  maxTokens?: number;
  seed?: number;
  stop?: string[];
  detail?: ImageDetail;
  maxImageTokens?: number;
  /** Low-resolution-query compression of each frame's visual tokens: a factor, `{ factor }`, or off (absent/false/1). */
  compression?: CompressionOption;
  signal?: AbortSignal;
  /** Called as the request enters a GPU phase. Internal: the worker's test hooks use it to abort at an exact point. */
  onPhase?: (phase: EnginePhase) => void;
}

export type EnginePhase = 'encode' | 'prefill';

export type CompressionOption = number | { factor: number } | false | undefined;

function compressionFactor(c: CompressionOption): number {
  const f = c === false || c === undefined ? 1 : typeof c === 'number' ? c : c.factor;
  if (!(Number.isInteger(f) && f >= 1)) throw new WebVLMError('InvalidArgument', `compression factor must be a positive integer, got ${JSON.stringify(c)}.`);
  return f;
}

export interface EngineConfig extends LoadOptions {
  /** KV-cache capacity in tokens; default min(max_position_embeddings, DEFAULT_CONTEXT = 4096). */
  contextLength?: number;
  /**
   * Compile the shaders at load (default true): one warm-up pass — a frame through the vision tower, a prefill and a
   * decode step — so the first answer does not pay pipeline compilation; `onCompile(step, steps)` reports it.
   */
  warmup?: boolean;
  onCompile?: (step: number, steps: number) => void;
}

const now = () => performance.now();

/** Identifies an image for KV-cache reuse: SHA-256 of its size and pixels (a 32-bit hash let a crafted image reuse another's features). */
async function imageKey(img: PixelImage): Promise<string> {
  return `${img.width}x${img.height}x${img.channels}:${await digestHex(new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength))}`;
}

export class Engine {
  private cache: KvCache;
  /** Keys of the images whose features sit in the cache, in prompt order. */
  private cachedImages: string[] = [];
  private readonly turns = new Turns();
  /** The running request's controller (dispose aborts it). */
  private running: AbortController | null = null;
  private readonly compressedProcessors = new Map<number, ChatProcessor>();
  /** Preprocess images on the GPU (default: not on software adapters; see `run`). */
  gpuPreprocess: boolean;
  private disposed = false;

  private constructor(
    readonly gpu: GpuContext,
    readonly loaded: LoadedModel,
    readonly modelId: string,
    readonly contextLength: number,
    /** Load time, warm-up included. */
    public loadMs: number,
  ) {
    this.cache = loaded.model.newCache(contextLength);
    this.gpuPreprocess = !gpu.caps.software;
  }

  static async create(gpu: GpuContext, modelId: string, cfg: EngineConfig = {}): Promise<Engine> {
    validateLoadOptions({ contextLength: cfg.contextLength, weights: cfg.weights });
    const t0 = now();
    const loaded = await loadModel(gpu, modelId, cfg);
    const max = loaded.config.text.maxPositionEmbeddings;
    const ctx = Math.min(cfg.contextLength ?? DEFAULT_CONTEXT, max);
    const engine = new Engine(gpu, loaded, modelId, ctx, 0);
    try {
      if (cfg.warmup !== false) await engine.warmup(cfg.onCompile);
    } catch (e) {
      await engine.dispose();
      throw e;
    }
    engine.loadMs = now() - t0;
    return engine;
  }

  /** Runs every pipeline a chat needs once (compiling it), then forgets what ran: the cache stays empty. */
  private async warmup(report?: (step: number, steps: number) => void): Promise<void> {
    const { model, processor } = this.loaded;
    report?.(0, 3);
    const side = 16;
    const features = this.gpuPreprocess
      ? await model.encodeImageRgba({ width: side, height: side, channels: 4, data: new Uint8ClampedArray(side * side * 4) }, processor.planImage(side, side, { tiler: 'global' }), processor.pixels)
      : await model.encodeImage(new Float32Array(processor.frameValues), 1);
    this.gpu.allocator.destroy(features);
    report?.(1, 3);
    // A prefill of several rows (GEMM and prefill attention; GEMV takes ≤ 4 rows), then one decode step.
    const rows = Math.max(1, Math.min(16, this.contextLength - 1));
    try {
      await model.forwardArgmax(new Array(rows).fill(0), this.cache);
      report?.(2, 3);
      if (this.cache.length < this.contextLength) await model.forwardArgmax([0], this.cache);
    } finally {
      this.forget();
    }
    report?.(3, 3);
  }

  get gpuBytes(): number {
    return this.loaded.model.weightBytes + this.cache.bytes;
  }

  /** Whether answers keep their special tokens (the family says: DocTags models answer in them). */
  get keepsSpecialTokens(): boolean {
    return this.loaded.family.keepsSpecialTokens?.(this.loaded.tokenizer, this.loaded.config) ?? false;
  }

  /** End-of-generation token ids: the model's eos ids, generation_config's, the tokenizer's, and the family's end-of-turn tokens. */
  get stopIds(): Set<number> {
    const ids = new Set<number>(this.loaded.config.text.eosTokenIds);
    const gen = this.loaded.generationConfig?.eos_token_id;
    for (const x of Array.isArray(gen) ? gen : gen !== undefined ? [gen] : []) if (typeof x === 'number') ids.add(x);
    for (const t of this.loaded.family.stopTokens(this.loaded.config)) {
      const id = this.loaded.tokenizer.tokenToId(t);
      if (id !== undefined) ids.add(id);
    }
    const eos = this.loaded.tokenizer.specialIds?.eos;
    if (eos !== undefined) ids.add(eos);
    return ids;
  }

  /**
   * Streams the answer to `req`. Requests (and `reset`) run one at a time, in call order: the place in the queue is
   * taken here, synchronously, and the request runs from here on whether or not its stream is read (a stream never
   * read still completes and frees the queue; leaving it early aborts the request).
   */
  chat(req: EngineChatRequest): AsyncIterable<ChatDelta> {
    if (this.disposed) throw new WebVLMError('Disposed', 'This engine was disposed.');
    validateSampling(req);
    // Our own controller too: for dispose() and an early exit from the stream to stop the request.
    const ctrl = new AbortController();
    const out = new DeltaBuffer(() => ctrl.abort());
    const user = req.signal;
    const onAbort = () => ctrl.abort(user?.reason);
    if (user?.aborted) ctrl.abort(user.reason);
    else user?.addEventListener('abort', onAbort, { once: true });
    const turn = this.turns.take();
    void (async () => {
      try {
        await turn.turn;
        validateGeneration(req);
        if (this.disposed) throw new WebVLMError('Disposed', 'This engine was disposed.');
        this.running = ctrl;
        for await (const d of this.run({ ...req, signal: ctrl.signal })) out.push(d);
      } catch (e) {
        out.fail(e);
      } finally {
        if (this.running === ctrl) this.running = null;
        user?.removeEventListener('abort', onAbort);
        turn.done();
        out.end();
      }
    })();
    return out;
  }

  private async *run(req: EngineChatRequest): AsyncGenerator<ChatDelta> {
    const { model, processor, tokenizer } = this.loaded;
    const signal = req.signal;
    const aborted = () => signal?.aborted === true;
    if (aborted()) throw new WebVLMError('Aborted', 'The request was aborted before it started.');
    const images = req.images ?? [];
    const tStart = now();
    const factor = compressionFactor(req.compression);
    // Pixels are resized, tiled and normalised on the GPU (bit-exact with the CPU path, 4 B/px uploaded instead of
    // 12 B per frame pixel) except on CPU adapters, where the JS resampler measured ~3× faster than SwiftShader.
    const gpuPixels = this.gpuPreprocess;
    const proc = this.processorFor(factor).processChat(req.messages, images, { detail: req.detail, maxImageTokens: req.maxImageTokens, pixels: !gpuPixels });
    const ids = proc.inputIds;
    const maxTokens = req.maxTokens ?? 256;
    if (ids.length + 1 > this.contextLength) {
      throw new WebVLMError('ContextOverflow', `The prompt is ${ids.length} tokens; the context holds ${this.contextLength}.`, {
        details: { promptTokens: ids.length, contextLength: this.contextLength },
      });
    }

    // Reuse the cache for the longest common prefix, never splitting an image's token run, and only
    // while the images inside it are the same images.
    const keys = (await Promise.all(images.map(imageKey))).map((k) => `${k}/c${factor}/${req.detail ?? ''}/${req.maxImageTokens ?? ''}`);
    if (aborted()) throw new WebVLMError('Aborted', 'The request was aborted before the prefill.');
    const imgId = this.loaded.config.imageTokenId;
    let L = 0;
    const cached = this.cache.tokens;
    while (L < cached.length && L < ids.length - 1 && cached[L] === ids[L]) L++;
    let imagesBefore = 0;
    for (let i = 0; i < L; ) {
      if (ids[i] !== imgId) {
        i++;
        continue;
      }
      let j = i;
      while (j < ids.length && ids[j] === imgId) j++;
      const imgsInRun = this.imagesInRun(proc.images.map((p) => p.visualTokens), i, ids);
      const sameImages = imgsInRun.every((k) => keys[k] !== undefined && this.cachedImages[k] === keys[k]);
      if (j > L || !sameImages) {
        L = i;
        break;
      }
      imagesBefore = Math.max(imagesBefore, ...imgsInRun.map((k) => k + 1));
      i = j;
    }
    this.cache.length = L;
    this.cache.tokens = ids.slice(0, L);
    this.cachedImages = keys.slice(0, imagesBefore);

    // Encode the images the prefill needs.
    const frameSize = processor.frameValues;
    let frame0 = 0;
    const features: GPUBuffer[] = [];
    let seen: GPUBuffer | undefined;
    const tEnc = now();
    try {
      for (let i = 0; i < images.length; i++) {
        const frames = proc.images[i].frames;
        if (i >= imagesBefore) {
          req.onPhase?.('encode');
          if (aborted()) throw new WebVLMError('Aborted', 'The request was aborted during image encoding.');
          features.push(
            gpuPixels
              ? await model.encodeImageRgba(images[i], proc.images[i], processor.pixels, factor)
              : await model.encodeImage(proc.pixelValues.subarray(frame0 * frameSize, (frame0 + frames) * frameSize), frames, factor),
          );
        }
        frame0 += frames;
      }
      const imageEncodeMs = now() - tEnc;
      req.onPhase?.('prefill');
      if (aborted()) throw new WebVLMError('Aborted', 'The request was aborted before the prefill.');
      const tPre = now();
      // Greedy decoding picks tokens on the GPU (4 bytes read back per token); sampling reads the logits back
      // and applies HF's exact rules on the CPU (the GPU sampler caps candidates at 256; see kernels/sampling.ts).
      const greedy = (req.temperature ?? 0) === 0;
      const penalty = req.repetitionPenalty ?? 1;
      seen = greedy && penalty !== 1 ? model.newSeenMask(ids) : undefined;
      const step = async (tokens: number[], feats: GPUBuffer[]): Promise<Float32Array | number> =>
        greedy ? model.forwardArgmax(tokens, this.cache, feats, penalty, seen) : model.forward(tokens, this.cache, feats, 1);
      let next = await step(ids.slice(L), features);
      this.cachedImages = keys;
      const prefillMs = now() - tPre;
      const ttft = now() - tStart;

      const rng = new Rng(req.seed ?? ((Math.random() * 2 ** 32) >>> 0));
      const stopIds = this.stopIds;
      const matcher = new StopMatcher(req.stop ?? []);
      const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: !this.keepsSpecialTokens });
      const generated: number[] = [];
      let text = '';
      let finish: FinishReason = 'length';
      let stoppedByString = false;
      const tDec = now();
      for (;;) {
        const tok = typeof next === 'number' ? next : sampleToken(next, req, [...ids, ...generated], rng);
        if (stopIds.has(tok)) {
          finish = 'stop';
          break;
        }
        generated.push(tok);
        const { emit, stopped } = matcher.push(decoder.push(tok));
        if (emit) {
          text += emit;
          yield { type: 'text', text: emit };
        }
        if (stopped) {
          finish = 'stop';
          stoppedByString = true;
          break;
        }
        if (generated.length >= maxTokens) break;
        if (this.cache.length + 1 > this.contextLength) break;
        if (aborted()) {
          finish = 'abort';
          break;
        }
        next = await step([tok], []);
      }
      if (!stoppedByString) {
        // Text still held back (a partial UTF-8 sequence, or the start of a stop string that never completed) is
        // real text: flush it, unless the flushed text itself completes a stop string.
        const last = matcher.push(decoder.flush());
        const rest = last.emit + (last.stopped ? '' : matcher.flush());
        if (last.stopped) finish = 'stop';
        if (rest) {
          text += rest;
          yield { type: 'text', text: rest };
        }
      }
      const decodeMs = now() - tDec;
      const reports: ImageReport[] = proc.images.map((p, i) => ({
        width: images[i].width, height: images[i].height, mode: p.mode, rows: p.rows, cols: p.cols, frames: p.frames,
        tiles: p.tiles, visualTokensBeforeCompression: p.frames * model.tokensPerFrame, visualTokens: p.visualTokens,
      }));
      const usage: Usage = {
        promptTokens: ids.length, visualTokens: proc.images.reduce((s, p) => s + p.visualTokens, 0), completionTokens: generated.length,
        cachedTokens: L, imageEncodeMs, prefillMs, timeToFirstTokenMs: ttft, decodeMs,
        decodeTokensPerSecond: generated.length > 1 ? ((generated.length - 1) * 1000) / decodeMs : 0, images: reports,
      };
      yield { type: 'done', text, finishReason: finish, usage };
    } finally {
      for (const f of features) this.gpu.allocator.destroy(f);
      if (seen) this.gpu.allocator.destroy(seen);
    }
  }

  /** The plan (tiles, tokens) an image of this size gets; no GPU work. */
  plan(width: number, height: number, opts: { detail?: ImageDetail; maxImageTokens?: number; compression?: CompressionOption } = {}): ImagePlanReport {
    const p = this.processorFor(compressionFactor(opts.compression)).planImage(width, height, { ...detailToPlanOptions(opts.detail), maxImageTokens: opts.maxImageTokens });
    const before = p.frames * this.loaded.model.tokensPerFrame;
    return { width, height, mode: p.mode, rows: p.rows, cols: p.cols, frames: p.frames, tiles: p.tiles, visualTokensBeforeCompression: before, visualTokens: p.visualTokens };
  }

  /**
   * The processor for a compression factor: the same rules with `image_seq_len` set to the compressed
   * tokens per frame, so the prompt's `<image>` count always equals the features' rows (and
   * `maxImageTokens` budgets count the tokens the model really sees).
   */
  private processorFor(factor: number): ChatProcessor {
    if (factor === 1) return this.loaded.processor;
    let p = this.compressedProcessors.get(factor);
    if (!p) {
      p = this.loaded.processor.withTokensPerFrame(this.loaded.model.compressedTokensPerFrame(factor));
      this.compressedProcessors.set(factor, p);
    }
    return p;
  }

  /** Which images (indices) own the `<image>` tokens of the run starting at `start`. */
  private imagesInRun(tokensPerImage: number[], start: number, ids: number[]): number[] {
    const imgId = this.loaded.config.imageTokenId;
    let before = 0;
    for (let i = 0; i < start; i++) if (ids[i] === imgId) before++;
    let run = 0;
    for (let i = start; i < ids.length && ids[i] === imgId; i++) run++;
    const out: number[] = [];
    let acc = 0;
    tokensPerImage.forEach((n, k) => {
      if (acc + n > before && acc < before + run) out.push(k);
      acc += n;
    });
    return out;
  }

  /** Forgets the conversation held in the KV cache, after the requests queued before it (never mid-answer). */
  async reset(): Promise<void> {
    const t = this.turns.take();
    try {
      await t.turn;
      this.forget();
    } finally {
      t.done();
    }
  }

  private forget(): void {
    this.cache.length = 0;
    this.cache.tokens = [];
    this.cachedImages = [];
  }

  /**
   * Aborts the running request, waits (at most `waitMs`) for the queue to drain, then frees the GPU memory; requests
   * still queued then fail with `Disposed`.
   */
  async dispose(waitMs = 10_000): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.running?.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.turns.idle(), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    this.cache.destroy(this.gpu);
    this.loaded.model.destroy();
  }
}
