/**
 * The seam between the engine and a model family. A family (one folder under src/models/, registered by `model_type`
 * in registry.ts) supplies its config parser, its tensor plan, its processor (tiler + prompt expansion), the checks
 * between its files, and a loaded model that turns pixels into visual features and runs the decoder. The engine
 * (chat loop, KV reuse, sampling, stop strings, usage) only ever sees these interfaces.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { PixelImage } from '../input/resample.ts';
import type { ChatMessage, Tokenizer } from '../input/tokenizer.ts';
import type { ImageDetail, ImagePlan, PixelPipeline, PlanOptions } from '../input/image-plan.ts';
import type { KvCache } from './llama.ts';
import type { TensorPlan, WeightFormats } from './plan.ts';
import type { DecoderShape } from './decoder-plan.ts';

type Json = Record<string, unknown>;

/** What every family's parsed config has (the engine reads only this). */
export interface VlmConfig {
  modelType: string;
  imageTokenId: number;
  /** The decoder's shape (every family has a decoder-only language model), its context and its eos ids (may be empty). */
  text: DecoderShape & { maxPositionEmbeddings: number; eosTokenIds: number[] };
}

/** The processor output the engine uses. */
export interface ProcessedChat {
  prompt: string;
  inputIds: number[];
  /** Normalized frames [frames, 3, S, S] (empty when pixels are prepared on the GPU). */
  pixelValues: Float32Array;
  pixelShape: [number, number, number, number];
  images: ImagePlan[];
}

/** A family's processor: chat template + image tiling + prompt expansion (transformers' `processing_*.py`). */
export interface ChatProcessor {
  /** How frames' pixels become the tower's input (the GPU preprocessing kernel takes it). */
  readonly pixels: PixelPipeline;
  /** Float values of one normalized frame (3·S·S). */
  readonly frameValues: number;
  processChat(messages: ReadonlyArray<ChatMessage>, images: ReadonlyArray<PixelImage>, opts?: PlanOptions & { detail?: ImageDetail; pixels?: boolean }): ProcessedChat;
  planImage(width: number, height: number, opts?: PlanOptions): ImagePlan;
  /** The same rules with `n` visual tokens per frame (compression: the prompt's image-token count follows). */
  withTokensPerFrame(n: number): ChatProcessor;
}

export interface TensorSource {
  name: string;
  shape: number[];
  /** f32 values. */
  values: Float32Array;
}

/** A loaded vision-language model on the GPU. */
export interface VisionLanguageModel {
  readonly weightBytes: number;
  /** Weight bytes one decode step reads (for the roofline figures of the benches). */
  readonly textWeightBytes: number;
  /** Upper bound on frames per vision chunk (tests lower it to exercise chunking on small models). */
  maxFramesPerChunk: number;
  /** Visual tokens one frame becomes, and after low-resolution-query compression by `factor`. */
  readonly tokensPerFrame: number;
  compressedTokensPerFrame(factor: number): number;
  newCache(capacity: number): KvCache;
  /** Normalized frames (CPU-prepared) → features [frames · tokens, textHidden]. The caller destroys the buffer. */
  encodeImage(pixels: Float32Array, frames: number, compress?: number): Promise<GPUBuffer>;
  /** The decoded image → features, preprocessing on the GPU (bit-exact with the CPU path). */
  encodeImageRgba(image: PixelImage, plan: ImagePlan, pixels: PixelPipeline, compress?: number): Promise<GPUBuffer>;
  /** `ids` through the decoder; image-token positions take `imageFeatures` rows in order. Logits of the last rows. */
  forward(ids: number[], cache: KvCache, imageFeatures?: GPUBuffer[], logitRows?: number): Promise<Float32Array>;
  /** Like forward, greedy on the GPU (repetition penalty over `seen`, a mask from `newSeenMask`). */
  forwardArgmax(ids: number[], cache: KvCache, imageFeatures?: GPUBuffer[], penalty?: number, seen?: GPUBuffer): Promise<number>;
  newSeenMask(ids: ArrayLike<number>): GPUBuffer;
  destroy(): void;
}

/** The checkpoint's small files, parsed. */
export interface FamilyFiles {
  config: Json;
  preprocessorConfig: Json;
  processorConfig: Json | null;
  /** tokenizer_config.json (e.g. SmolVLM's token-string attributes); absent when a caller has none. */
  tokenizerConfig?: Json | null;
}

export interface ModelFamily<C extends VlmConfig = VlmConfig> {
  /** The folder's name, for messages. */
  readonly name: string;
  /** config.json `model_type` values this family reads. */
  readonly modelTypes: readonly string[];
  /** The checkpoints it has been checked against, for the README and `UnsupportedModel` hints. */
  readonly examples: readonly string[];
  parseConfig(json: unknown): C;
  tensorPlan(cfg: C): TensorPlan;
  /** Layers the config describes (checked against the headers' tensor count before the plan is built). */
  layerCount(cfg: C): number;
  createProcessor(tokenizer: Tokenizer, files: FamilyFiles, cfg: C): ChatProcessor;
  /** Checks between the files (special tokens, tile size, tokens per frame) at load: `CorruptCheckpoint`. */
  checkConsistency(cfg: C, tokenizer: Tokenizer, processor: ChatProcessor): void;
  /** Extra end-of-turn tokens beyond eos (e.g. `<end_of_utterance>`). */
  stopTokens(cfg: C): readonly string[];
  /**
   * Whether answers are streamed with their special tokens (default: skipped, as transformers' decode with
   * skip_special_tokens=True). DocTags models answer *in* special tokens (`<doctag>`, `<otsl>`, `<fcel>`, …).
   */
  keepsSpecialTokens?(tokenizer: Tokenizer, cfg: C): boolean;
  /** For the memory estimate: frames of one image at the default detail, and the transient bytes of a vision pass. */
  framesPerImage(cfg: C, preprocessorConfig: Json | null): number;
  visionActivations(cfg: C, frames: number): { bytes: number; largest: { bytes: number; what: string } };
  load(gpu: GpuContext, cfg: C, tensors: AsyncIterable<TensorSource>, formats: WeightFormats): Promise<VisionLanguageModel>;
}
