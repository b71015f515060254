/**
 * The Idefics3 (SmolVLM) processor: image geometry (pure functions), pixels (CPU reference through
 * `resample.ts`) and prompt expansion, following transformers' slow `Idefics3ImageProcessor` and
 * `Idefics3Processor` exactly in the 'model' tiler (see shared/idefics3-semantics.md).
 *
 * Tilers (our feature; the model was trained on its own rules, which stay the default):
 * - 'model'  — the checkpoint's rules: longest edge → size.longest_edge (even rounding, 4096 cap; small
 *              images are upscaled), sides rounded up to multiples of the tile, rows×cols tiles + a
 *              global frame (a single frame when splitting is disabled).
 * - 'native' — never upscale to size.longest_edge: the longest-edge step only runs when the image is
 *              larger (then it is the model's step); the sides are then rounded up to whole tiles as
 *              the model does (at most one tile of stretch per side). When that gives one tile (both
 *              sides ≤ tile, e.g. 512×384) the image is ONE frame in the single-image form
 *              (`<fake><global-img><image>×seq<fake>`, 64 tokens for SmolVLM): no duplicate global.
 * - 'global' — one frame: the image resized straight to tile×tile (one Lanczos pass), single-image form.
 * `maxImageTokens` caps any of them: if over budget, the model's rules are re-run with the longest
 * edge at k·tile for the largest k whose rows×cols + 1 frames fit (k = 1: one direct frame).
 * `detail`: 'low' → 'global', 'auto' → 'native', 'high' → 'model'.
 */
import { WebVLMError } from '../../errors.ts';
import type { ChatProcessor } from '../family.ts';
import type { ChatMessage, Tokenizer } from '../../input/tokenizer.ts';
import { imageParts, partDetail } from '../../input/tokenizer.ts';
import { normalizationTable, resizePil, validateImage, writeNormalizedFrame, type PixelImage } from '../../input/resample.ts';
import { detailToPlanOptions, type ImageDetail, type ImagePlan, type PixelPipeline, type PlanOptions, type Size, type Tiler } from '../../input/image-plan.ts';

export { detailToPlanOptions, type ImageDetail, type ImagePlan, type PlanOptions, type Size, type Tiler };

/** transformers' MAX_IMAGE_SIZE: the resized image's sides are capped here after the longest-edge step. */
export const MAX_IMAGE_SIZE = 4096;

export interface Idefics3ProcessorConfig extends PixelPipeline {
  /** size.longest_edge (SmolVLM: 2048). */
  longestEdge: number;
  /** `<image>` tokens per frame (processor_config image_seq_len; SmolVLM: 64). */
  imageSeqLen: number;
  doResize: boolean;
  doImageSplitting: boolean;
}

type Json = Record<string, unknown>;
const obj = (x: unknown): Json => {
  const v = typeof x === 'string' ? JSON.parse(x) : x;
  return typeof v === 'object' && v !== null ? (v as Json) : {};
};
const triple = (v: unknown, d: number): [number, number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1]), Number(v[2])] : typeof v === 'number' ? [v, v, v] : [d, d, d];

/** Reads preprocessor_config.json (+ processor_config.json, + config.json for image_seq_len when absent). */
export function parseProcessorConfig(preprocessorConfig: unknown, processorConfig?: unknown, modelConfig?: unknown): Idefics3ProcessorConfig {
  const p = obj(preprocessorConfig);
  const size = obj(p.size);
  const maxSize = obj(p.max_image_size);
  const resample = p.resample ?? 1;
  if (resample !== 1) throw new WebVLMError('UnsupportedModel', `preprocessor resample=${String(resample)}; only 1 (LANCZOS) is implemented.`);
  let seq = obj(processorConfig).image_seq_len as number | undefined;
  if (seq === undefined && modelConfig !== undefined) {
    const m = obj(modelConfig);
    const v = obj(m.vision_config);
    const n = Math.floor(Number(v.image_size ?? 224) / Number(v.patch_size ?? 32)); // patches a side: image_size // patch_size
    seq = (n * n) / Number(m.scale_factor ?? 2) ** 2;
  }
  const cfg: Idefics3ProcessorConfig = {
    longestEdge: Number(size.longest_edge ?? 4 * 364),
    tileSize: Number(maxSize.longest_edge ?? 364),
    imageSeqLen: Number(seq ?? 169),
    doResize: p.do_resize !== false,
    doImageSplitting: p.do_image_splitting !== false,
    doConvertRgb: p.do_convert_rgb !== false,
    doRescale: p.do_rescale !== false,
    rescaleFactor: Number(p.rescale_factor ?? 1 / 255),
    doNormalize: p.do_normalize !== false,
    imageMean: triple(p.image_mean, 0.5),
    imageStd: triple(p.image_std, 0.5),
  };
  for (const k of ['longestEdge', 'tileSize', 'imageSeqLen'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new WebVLMError('CorruptCheckpoint', `processor config: ${k} = ${cfg[k]} is not a positive integer.`);
  }
  return cfg;
}

// ---- Geometry ----------------------------------------------------------------------------------

/** transformers `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound(4096)`. */
export function resizeOutputSize(width: number, height: number, longestEdge: number): Size {
  let w = width;
  let h = height;
  const aspect = w / h;
  if (w >= h) {
    w = longestEdge;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = longestEdge;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  const aspect2 = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / aspect2);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * aspect2);
  }
  return { width: Math.max(w, 1), height: Math.max(h, 1) };
}

/** transformers `resize_for_vision_encoder`: long side up to a multiple of the tile, short side from the aspect, up too. */
export function visionEncoderSize(width: number, height: number, tile: number): Size {
  const aspect = width / height;
  let w: number;
  let h: number;
  if (width >= height) {
    w = Math.ceil(width / tile) * tile;
    h = Math.ceil(Math.trunc(w / aspect) / tile) * tile;
  } else {
    h = Math.ceil(height / tile) * tile;
    w = Math.ceil(Math.trunc(h * aspect) / tile) * tile;
  }
  // int(w / aspect) can be 0 for extreme aspects; ceil(0) = 0 would make an empty side.
  return { width: Math.max(w, tile), height: Math.max(h, tile) };
}

function finishPlan(mode: Tiler, w: number, h: number, resizes: Size[], cfg: Idefics3ProcessorConfig, budgetLimited: boolean): ImagePlan {
  const M = cfg.tileSize;
  const last = resizes.length ? resizes[resizes.length - 1] : { width: w, height: h };
  const single = last.width <= M && last.height <= M;
  const rows = single ? 0 : last.height / M;
  const cols = single ? 0 : last.width / M;
  const frames = single ? 1 : rows * cols + 1;
  const tiles: ImagePlan['tiles'] = [];
  if (single) tiles.push([0, 0, w, h]);
  else {
    const sx = w / last.width;
    const sy = h / last.height;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tiles.push([c * M * sx, r * M * sy, M * sx, M * sy]);
  }
  return { mode, original: { width: w, height: h }, resizes, resized: last, rows, cols, frames, visualTokens: frames * cfg.imageSeqLen, tileSize: M, budgetLimited, tiles };
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new WebVLMError('InvalidImage', `image size ${width}×${height} is not a positive integer size.`, { details: { width, height } });
  }
}

/** The model's own chain with the longest edge set to `longestEdge`. */
function modelResizes(width: number, height: number, cfg: Idefics3ProcessorConfig, longestEdge: number): Size[] {
  const M = cfg.tileSize;
  const first = cfg.doResize ? resizeOutputSize(width, height, longestEdge) : { width, height };
  if (!cfg.doImageSplitting) return [first, { width: M, height: M }];
  return [first, visionEncoderSize(first.width, first.height, M)];
}

/** Pure geometry of one image: sizes, grid, frames and token counts. */
export function planImage(width: number, height: number, cfg: Idefics3ProcessorConfig, mode: Tiler | PlanOptions = 'model'): ImagePlan {
  checkSize(width, height);
  const opts: PlanOptions = typeof mode === 'string' ? { tiler: mode } : mode;
  const tiler = opts.tiler ?? 'model';
  if (tiler !== 'model' && tiler !== 'native' && tiler !== 'global') {
    throw new WebVLMError('InvalidArgument', `tiler must be 'model', 'native' or 'global', got ${JSON.stringify(tiler)}.`);
  }
  const M = cfg.tileSize;
  const direct = [{ width: M, height: M }];
  let plan: ImagePlan;
  if (tiler === 'model') plan = finishPlan(tiler, width, height, modelResizes(width, height, cfg, cfg.longestEdge), cfg, false);
  else if (tiler === 'global' || !cfg.doImageSplitting) plan = finishPlan(tiler, width, height, direct, cfg, false);
  else if (tiler === 'native') {
    const first = Math.max(width, height) > cfg.longestEdge && cfg.doResize ? resizeOutputSize(width, height, cfg.longestEdge) : { width, height };
    const grid = visionEncoderSize(first.width, first.height, M);
    plan = finishPlan(tiler, width, height, grid.width <= M && grid.height <= M ? direct : [first, grid], cfg, false);
  } else throw new WebVLMError('Internal', `unhandled tiler ${tiler}.`);

  const budget = opts.maxImageTokens;
  if (budget === undefined || plan.visualTokens <= budget) return plan;
  if (!Number.isFinite(budget) || budget < cfg.imageSeqLen) {
    throw new WebVLMError('InvalidArgument', `maxImageTokens = ${budget} is below one frame (${cfg.imageSeqLen} tokens).`);
  }
  const longTiles = Math.max(plan.resized.width, plan.resized.height) / M;
  for (let k = Math.min(longTiles - 1, Math.floor(cfg.longestEdge / M)); k >= 2; k--) {
    const first = resizeOutputSize(width, height, k * M);
    const p = finishPlan(tiler, width, height, [first, visionEncoderSize(first.width, first.height, M)], cfg, true);
    if (p.visualTokens <= budget) return p;
  }
  return finishPlan(tiler, width, height, direct, cfg, true);
}

// ---- Prompt ------------------------------------------------------------------------------------

const FAKE = '<fake_token_around_image>';
const IMAGE = '<image>';
const GLOBAL = '<global-img>';

/** The text one image's `<image>` placeholder becomes (transformers `_prompt_split_image` / `_prompt_single_image`). */
export function imagePromptString(plan: Pick<ImagePlan, 'rows' | 'cols'>, imageSeqLen: number): string {
  const run = IMAGE.repeat(imageSeqLen);
  if (plan.rows === 0 && plan.cols === 0) return `${FAKE}${GLOBAL}${run}${FAKE}`;
  let s = '';
  for (let r = 1; r <= plan.rows; r++) {
    for (let c = 1; c <= plan.cols; c++) s += `${FAKE}<row_${r}_col_${c}>${run}`;
    s += '\n';
  }
  return `${s}\n${FAKE}${GLOBAL}${run}${FAKE}`;
}

/** Replaces the i-th `<image>` of `text` with image i's expansion. Counts must match. */
export function expandImageTokens(text: string, plans: ReadonlyArray<Pick<ImagePlan, 'rows' | 'cols'>>, imageSeqLen: number): string {
  const pieces = text.split(IMAGE);
  if (pieces.length - 1 !== plans.length) {
    throw new WebVLMError('InvalidArgument', `The prompt has ${pieces.length - 1} ${IMAGE} placeholders but ${plans.length} images were given.`, {
      details: { placeholders: pieces.length - 1, images: plans.length },
    });
  }
  let out = pieces[0];
  for (let i = 0; i < plans.length; i++) out += imagePromptString(plans[i], imageSeqLen) + pieces[i + 1];
  return out;
}

// ---- Pixels ------------------------------------------------------------------------------------

/**
 * The frames of one image as float32 [frames, 3, tile, tile] (row-major tiles, then the global frame),
 * written at `out[offset…]` when given. CPU reference: bit-exact with transformers + Pillow.
 */
export function imagePixels(img: PixelImage, plan: ImagePlan, cfg: Idefics3ProcessorConfig, out?: Float32Array, offset = 0): Float32Array {
  validateImage(img);
  if (img.width !== plan.original.width || img.height !== plan.original.height) {
    throw new WebVLMError('InvalidArgument', `image is ${img.width}×${img.height} but the plan was made for ${plan.original.width}×${plan.original.height}.`);
  }
  const M = cfg.tileSize;
  const per = 3 * M * M;
  out ??= new Float32Array(plan.frames * per);
  if (offset + plan.frames * per > out.length) throw new WebVLMError('BufferTooSmall', `pixel buffer holds ${out.length} floats; the image needs ${plan.frames * per} at ${offset}.`);
  let cur = img;
  for (const s of plan.resizes) if (s.width !== cur.width || s.height !== cur.height) cur = resizePil(cur, s.width, s.height);
  const lut = normalizationTable({ rescaleFactor: cfg.rescaleFactor, mean: cfg.imageMean, std: cfg.imageStd, doRescale: cfg.doRescale, doNormalize: cfg.doNormalize });
  const write = (src: PixelImage, x: number, y: number, frame: number) =>
    writeNormalizedFrame(src, { x, y, width: M, height: M }, lut, out, offset + frame * per, cfg.doConvertRgb);
  if (plan.rows === 0) {
    if (cur.width !== M || cur.height !== M) throw new WebVLMError('Internal', `single frame is ${cur.width}×${cur.height}, not ${M}×${M}.`);
    write(cur, 0, 0, 0);
    return out;
  }
  let f = 0;
  for (let r = 0; r < plan.rows; r++) for (let c = 0; c < plan.cols; c++) write(cur, c * M, r * M, f++);
  write(cur.width === M && cur.height === M ? cur : resizePil(cur, M, M), 0, 0, f);
  return out;
}

// ---- Processor ---------------------------------------------------------------------------------

export interface ProcessorImage extends PlanOptions {
  image: PixelImage;
  detail?: ImageDetail;
}

export interface ProcessorOutput {
  /** The prompt after image expansion. */
  prompt: string;
  inputIds: number[];
  /** float32 [frames, 3, tile, tile], every image's frames in prompt order (empty with `pixels: false`). */
  pixelValues: Float32Array;
  pixelShape: [number, number, number, number];
  images: ImagePlan[];
}

export class Idefics3Processor implements ChatProcessor {
  constructor(
    readonly tokenizer: Tokenizer,
    readonly config: Idefics3ProcessorConfig,
  ) {
    for (const t of [IMAGE, FAKE, GLOBAL]) tokenizer.requireId(t);
  }

  get pixels(): PixelPipeline {
    return this.config;
  }

  get frameValues(): number {
    return 3 * this.config.tileSize * this.config.tileSize;
  }

  withTokensPerFrame(n: number): Idefics3Processor {
    return new Idefics3Processor(this.tokenizer, { ...this.config, imageSeqLen: n });
  }

  static fromFiles(tokenizer: Tokenizer, files: { preprocessorConfig: unknown; processorConfig?: unknown; modelConfig?: unknown }): Idefics3Processor {
    return new Idefics3Processor(tokenizer, parseProcessorConfig(files.preprocessorConfig, files.processorConfig, files.modelConfig));
  }

  planImage(width: number, height: number, mode: Tiler | PlanOptions = 'model'): ImagePlan {
    return planImage(width, height, this.config, mode);
  }

  /**
   * Plans each image (per-image detail/tiler/budget over `defaults`), expands the prompt, tokenizes and builds pixels.
   * `pixels: false` skips the CPU pixels (`pixelValues` is then empty) for callers that preprocess on the GPU
   * from the plans (`Idefics3Model.encodeImageRgba`).
   */
  process(text: string, images: ReadonlyArray<PixelImage | ProcessorImage> = [], defaults: PlanOptions & { detail?: ImageDetail; pixels?: boolean } = {}): ProcessorOutput {
    const items = images.map((x) => ('image' in x ? x : { image: x }) as ProcessorImage);
    const plans = items.map((it) => {
      validateImage(it.image);
      const base = it.detail ?? defaults.detail;
      const opts: PlanOptions = {
        tiler: it.tiler ?? (base !== undefined ? detailToPlanOptions(base).tiler : defaults.tiler),
        maxImageTokens: it.maxImageTokens ?? defaults.maxImageTokens,
      };
      return planImage(it.image.width, it.image.height, this.config, opts);
    });
    const prompt = expandImageTokens(text, plans, this.config.imageSeqLen);
    const M = this.config.tileSize;
    const frames = plans.reduce((n, p) => n + p.frames, 0);
    const cpuPixels = defaults.pixels !== false;
    const pixelValues = new Float32Array(cpuPixels ? frames * 3 * M * M : 0);
    let f = 0;
    if (cpuPixels) items.forEach((it, i) => {
      imagePixels(it.image, plans[i], this.config, pixelValues, f * 3 * M * M);
      f += plans[i].frames;
    });
    return { prompt, inputIds: this.tokenizer.encode(prompt), pixelValues, pixelShape: [frames, 3, M, M], images: plans };
  }

  /** Chat messages → template → `process`; `images` are the decoded pixels of the messages' image parts, in order. */
  processChat(
    messages: ReadonlyArray<ChatMessage>,
    images: ReadonlyArray<PixelImage>,
    opts: PlanOptions & { detail?: ImageDetail; addGenerationPrompt?: boolean; pixels?: boolean } = {},
  ): ProcessorOutput {
    const parts = imageParts(messages);
    if (parts.length !== images.length) {
      throw new WebVLMError('InvalidArgument', `The messages hold ${parts.length} images but ${images.length} were given.`);
    }
    const text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: opts.addGenerationPrompt ?? true });
    const items = images.map((image, i) => {
      const d = partDetail(parts[i]);
      return { image, detail: d === undefined ? undefined : (d as ImageDetail) };
    });
    return this.process(text, items, opts);
  }
}
