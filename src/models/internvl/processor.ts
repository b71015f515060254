/**
 * The InternVL processor, per layout:
 *
 * Pixels (both layouts do the same Pillow steps; the arithmetic of the last step differs):
 *   RGB as PIL's `convert('RGB')` (alpha dropped, gray replicated: the model card's `load_image`, transformers'
 *   `convert_to_rgb` for PIL input) → the tile grid (tiling.ts) → one BICUBIC resize to (cols·448, rows·448) →
 *   448-px tiles cut row-major → plus, when there is more than one tile and `use_thumbnail`, the whole image
 *   BICUBIC-resized to 448×448 (last) → normalised with ImageNet mean/std. A 1×1 grid is a single frame.
 *   - original (`build_transform`: ToTensor + Normalize): uint8 / 255 in float32, then (x − mean) / std in float32;
 *   - native (`GotOcr2ImageProcessor`, the slow PIL processor): uint8 × (1/255) in float64 → float32, then the same
 *     normalisation. (The -hf repos save `GotOcr2ImageProcessorFast`, whose torch bicubic is not Pillow's: we follow
 *     the PIL processor, which the brief's "BICUBIC as Pillow does it" asks for.)
 * Prompt: the checkpoint's chat template (tokenizer_config.json; the original's has the default InternVL system
 *   message and renders an image part as `<image>\n`), then each image placeholder in order becomes
 *   `<img>` + `<IMG_CONTEXT>` × 256 · frames + `</img>` — the placeholder is `<image>` in the original layout
 *   (`InternVLChatModel.chat`: `query.replace('<image>', image_tokens, 1)`) and `<IMG_CONTEXT>` itself in the native
 *   one (`InternVLProcessor._insert_media_placeholders`). Generation stops on `<|im_end|>` (the template's separator).
 *
 * Tilers: 'model' (default) and 'native' are the checkpoint's rules; 'global' is one frame (the image resized to
 * 448×448, as max_num = 1). `maxImageTokens` lowers the tile cap until tiles (+ thumbnail) × 256 fit.
 */
import { WebVLMError } from '../../errors.ts';
import type { ChatProcessor, ProcessedChat } from '../family.ts';
import type { ChatMessage, Tokenizer } from '../../input/tokenizer.ts';
import { imageParts, partDetail } from '../../input/tokenizer.ts';
import { normalizationTable, resizeBicubicRaw, toRgbDropAlpha, validateImage, writeNormalizedFrame, type PixelImage } from '../../input/resample.ts';
import { detailToPlanOptions, type ImageDetail, type ImagePlan, type PixelPipeline, type PlanOptions } from '../../input/image-plan.ts';
import type { InternVLConfig, InternVLLayout } from './config.ts';
import { closestGrid, nativeCandidates, originalCandidates, type Grid } from './tiling.ts';

export const IMG_START = '<img>';
export const IMG_END = '</img>';
export const IMG_CONTEXT = '<IMG_CONTEXT>';
/** InternVL's `build_transform` constants (IMAGENET_MEAN / IMAGENET_STD). */
export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export interface InternVLProcessorConfig extends PixelPipeline {
  layout: InternVLLayout;
  minTiles: number;
  maxTiles: number;
  useThumbnail: boolean;
  /** Original `dynamic_image_size` / native `crop_to_patches` (InternVLProcessor's default true); false: one frame. */
  dynamic: boolean;
  /** `<IMG_CONTEXT>` tokens per frame. */
  imageSeqLen: number;
  /** torchvision ToTensor's float32 division (original); absent: transformers' float64 rescale (native). */
  rescaleDivisor?: number;
}

type Json = Record<string, unknown>;
const obj = (x: unknown): Json => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Json) : {});

function fail(message: string): never {
  throw new WebVLMError('UnsupportedModel', message);
}

/** The processor config of a parsed model config (+ preprocessor_config.json for the native layout). */
export function internvlProcessorConfig(cfg: InternVLConfig, preprocessorConfig: unknown): InternVLProcessorConfig {
  const tile = cfg.vision.imageSize;
  if (cfg.layout === 'original') {
    // chat() takes pixel_values from the caller; the model's own rules are config.json's (preprocessor_config.json is
    // a CLIPFeatureExtractor stub chat() never reads).
    const t = cfg.tiling!;
    return {
      layout: 'original', resample: 'bicubic', tileSize: tile, doConvertRgb: true, doRescale: true, rescaleFactor: 1 / 255, rescaleDivisor: 255,
      doNormalize: true, imageMean: IMAGENET_MEAN, imageStd: IMAGENET_STD,
      minTiles: t.minTiles, maxTiles: t.maxTiles, useThumbnail: t.useThumbnail, dynamic: t.dynamic, imageSeqLen: cfg.imageSeqLen,
    };
  }
  const p = obj(preprocessorConfig);
  const size = obj(p.size);
  const h = size.height ?? 448, w = size.width ?? 448;
  if (h !== w || h !== tile) fail(`preprocessor_config.json size ${JSON.stringify(p.size)} is not the vision tower's ${tile}×${tile} tile`);
  const resample = p.resample ?? 3;
  if (resample !== 3) fail(`preprocessor_config.json resample=${String(resample)}; only 3 (BICUBIC) is implemented`);
  const triple = (v: unknown, d: [number, number, number]): [number, number, number] => (Array.isArray(v) && v.length === 3 ? [Number(v[0]), Number(v[1]), Number(v[2])] : d);
  const int = (v: unknown, d: number, what: string) => {
    const x = v ?? d;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 64) fail(`preprocessor_config.json ${what} ${JSON.stringify(x)} must be an integer from 1 to 64`);
    return x;
  };
  const minTiles = int(p.min_patches, 1, 'min_patches'), maxTiles = int(p.max_patches, 12, 'max_patches');
  if (minTiles > maxTiles) fail(`preprocessor_config.json min_patches ${minTiles} exceeds max_patches ${maxTiles}`);
  return {
    layout: 'native', resample: 'bicubic', tileSize: tile, doConvertRgb: p.do_convert_rgb !== false, doRescale: p.do_rescale !== false,
    rescaleFactor: typeof p.rescale_factor === 'number' ? p.rescale_factor : 1 / 255, doNormalize: p.do_normalize !== false,
    // GotOcr2ImageProcessor's defaults are CLIP's; the converted repos write ImageNet's.
    imageMean: triple(p.image_mean, [0.48145466, 0.4578275, 0.40821073]), imageStd: triple(p.image_std, [0.26862954, 0.26130258, 0.27577711]),
    // InternVLProcessor passes crop_to_patches=True (its images_kwargs default, over the image processor's own value);
    // the thumbnail is crop_image_to_patches' use_thumbnail default.
    minTiles, maxTiles, useThumbnail: true, dynamic: true, imageSeqLen: cfg.imageSeqLen,
  };
}

/** The grid of one image under `cfg` with a tile cap of `maxTiles`. */
function gridFor(cfg: InternVLProcessorConfig, width: number, height: number, maxTiles: number): Grid {
  const lo = Math.min(cfg.minTiles, maxTiles);
  const cands = cfg.layout === 'original' ? originalCandidates(lo, maxTiles) : nativeCandidates(lo, maxTiles);
  return closestGrid(cands, width, height, cfg.tileSize);
}

const framesOf = (cfg: InternVLProcessorConfig, g: Grid) => g[0] * g[1] + (g[0] * g[1] > 1 && cfg.useThumbnail ? 1 : 0);

export function planImage(width: number, height: number, cfg: InternVLProcessorConfig, opts: PlanOptions = {}): ImagePlan {
  const M = cfg.tileSize, seq = cfg.imageSeqLen;
  const original = { width, height };
  const single = (budgetLimited: boolean): ImagePlan => ({
    mode: opts.tiler ?? 'model', original, resizes: [{ width: M, height: M }], resized: { width: M, height: M }, rows: 0, cols: 0,
    frames: 1, visualTokens: seq, tileSize: M, budgetLimited, tiles: [[0, 0, width, height]],
  });
  if (opts.tiler === 'global' || !cfg.dynamic) return single(false);
  let cap = cfg.maxTiles, g = gridFor(cfg, width, height, cap), limited = false;
  const budget = opts.maxImageTokens;
  while (budget !== undefined && framesOf(cfg, g) * seq > budget && cap > 1) {
    cap--;
    limited = true;
    g = gridFor(cfg, width, height, cap);
  }
  const [cols, rows] = g;
  if (cols * rows === 1) return single(limited);
  const tiles: Array<[number, number, number, number]> = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tiles.push([(c * width) / cols, (r * height) / rows, width / cols, height / rows]);
  const frames = framesOf(cfg, g);
  return {
    mode: opts.tiler ?? 'model', original, resizes: [{ width: cols * M, height: rows * M }], resized: { width: cols * M, height: rows * M },
    rows, cols, frames, visualTokens: frames * seq, tileSize: M, budgetLimited: limited, tiles,
  };
}

/** Normalized frames [frames, 3, M, M] of one image under its plan, at `out[offset…]`. */
export function imagePixels(img: PixelImage, plan: ImagePlan, cfg: InternVLProcessorConfig, out?: Float32Array, offset = 0): Float32Array {
  validateImage(img);
  if (img.width !== plan.original.width || img.height !== plan.original.height) {
    throw new WebVLMError('InvalidArgument', `image is ${img.width}×${img.height} but the plan was made for ${plan.original.width}×${plan.original.height}.`);
  }
  const M = cfg.tileSize, per = 3 * M * M;
  out ??= new Float32Array(plan.frames * per);
  if (offset + plan.frames * per > out.length) throw new WebVLMError('BufferTooSmall', `pixel buffer holds ${out.length} floats; the image needs ${plan.frames * per} at ${offset}.`);
  const rgb = cfg.doConvertRgb || img.channels !== 3 ? toRgbDropAlpha(img) : img;
  const lut = normalizationTable({ rescaleFactor: cfg.rescaleFactor, rescaleDivisor: cfg.rescaleDivisor, mean: cfg.imageMean, std: cfg.imageStd, doRescale: cfg.doRescale, doNormalize: cfg.doNormalize });
  const write = (src: PixelImage, x: number, y: number, f: number) => writeNormalizedFrame(src, { x, y, width: M, height: M }, lut, out, offset + f * per, false);
  if (plan.rows === 0) {
    write(resizeBicubicRaw(rgb, M, M), 0, 0, 0);
    return out;
  }
  const big = resizeBicubicRaw(rgb, plan.cols * M, plan.rows * M);
  let f = 0;
  for (let r = 0; r < plan.rows; r++) for (let c = 0; c < plan.cols; c++) write(big, c * M, r * M, f++);
  if (plan.frames > f) write(resizeBicubicRaw(rgb, M, M), 0, 0, f);
  return out;
}

/** Replaces the i-th placeholder with `<img>` + `<IMG_CONTEXT>` × seq·frames_i + `</img>`. */
export function expandImageTokens(text: string, plans: readonly ImagePlan[], seq: number, placeholder: string): string {
  const pieces = text.split(placeholder);
  if (pieces.length - 1 !== plans.length) {
    throw new WebVLMError('InvalidArgument', `The prompt has ${pieces.length - 1} ${placeholder} placeholders but ${plans.length} images were given.`);
  }
  let outText = pieces[0];
  plans.forEach((p, i) => {
    outText += IMG_START + IMG_CONTEXT.repeat(seq * p.frames) + IMG_END + pieces[i + 1];
  });
  return outText;
}

export class InternVLProcessor implements ChatProcessor {
  constructor(readonly tokenizer: Tokenizer, readonly config: InternVLProcessorConfig) {
    for (const t of [IMG_START, IMG_END, IMG_CONTEXT, '<|im_end|>']) tokenizer.requireId(t);
  }

  get pixels(): PixelPipeline {
    return this.config;
  }

  get frameValues(): number {
    return 3 * this.config.tileSize * this.config.tileSize;
  }

  get placeholder(): string {
    return this.config.layout === 'original' ? '<image>' : IMG_CONTEXT;
  }

  withTokensPerFrame(n: number): InternVLProcessor {
    return new InternVLProcessor(this.tokenizer, { ...this.config, imageSeqLen: n });
  }

  planImage(width: number, height: number, opts?: PlanOptions): ImagePlan {
    return planImage(width, height, this.config, opts);
  }

  /** Templated text + images → expanded prompt, ids and (unless `pixels: false`) the frames' pixels. */
  process(text: string, images: ReadonlyArray<{ image: PixelImage; detail?: ImageDetail } & PlanOptions>, defaults: PlanOptions & { detail?: ImageDetail; pixels?: boolean } = {}): ProcessedChat {
    const plans = images.map((it) => {
      validateImage(it.image);
      const base = it.detail ?? defaults.detail;
      const tiler = it.tiler ?? (base !== undefined ? detailToPlanOptions(base).tiler : defaults.tiler);
      return planImage(it.image.width, it.image.height, this.config, { tiler, maxImageTokens: it.maxImageTokens ?? defaults.maxImageTokens });
    });
    const prompt = expandImageTokens(text, plans, this.config.imageSeqLen, this.placeholder);
    const M = this.config.tileSize;
    const frames = plans.reduce((n, p) => n + p.frames, 0);
    const cpu = defaults.pixels !== false;
    const pixelValues = new Float32Array(cpu ? frames * 3 * M * M : 0);
    let f = 0;
    if (cpu) images.forEach((it, i) => {
      imagePixels(it.image, plans[i], this.config, pixelValues, f * 3 * M * M);
      f += plans[i].frames;
    });
    return { prompt, inputIds: this.tokenizer.encode(prompt), pixelValues, pixelShape: [frames, 3, M, M], images: plans };
  }

  processChat(messages: ReadonlyArray<ChatMessage>, images: ReadonlyArray<PixelImage>, opts: PlanOptions & { detail?: ImageDetail; pixels?: boolean; addGenerationPrompt?: boolean } = {}): ProcessedChat {
    const parts = imageParts(messages);
    if (parts.length !== images.length) throw new WebVLMError('InvalidArgument', `The messages hold ${parts.length} images but ${images.length} were given.`);
    // String content stays a string (the template concatenates a system message's content), as HF passes it.
    const text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: opts.addGenerationPrompt ?? true, textAsString: true });
    const items = images.map((image, i) => {
      const d = partDetail(parts[i]);
      return { image, detail: d === undefined ? undefined : (d as ImageDetail) };
    });
    return this.process(text, items, opts);
  }
}
