/**
 * What a tiling image processor decides for one image, and the pixel pipeline its frames go through: the types the
 * CPU processors (models/<family>/processor.ts) produce and the GPU preprocessing kernel (kernels/resample.ts)
 * consumes, so neither imports the other's layer.
 */
import { WebVLMError } from '../errors.ts';

/** How each frame's pixels are turned into the vision tower's input. */
export interface PixelPipeline {
  /** The square tile side the vision encoder takes (SmolVLM: 512). */
  tileSize: number;
  doConvertRgb: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** The PIL filter of the plan's resizes; absent: 'lanczos' (Idefics3). InternVL: 'bicubic' (CPU path only). */
  resample?: 'lanczos' | 'bicubic';
}

export interface Size {
  width: number;
  height: number;
}

export type Tiler = 'model' | 'native' | 'global';
export type ImageDetail = 'low' | 'auto' | 'high';

export interface PlanOptions {
  tiler?: Tiler;
  /** Cap on visual tokens (`<image>` tokens) for this image. */
  maxImageTokens?: number;
}

export function detailToPlanOptions(detail: ImageDetail | string | undefined, maxImageTokens?: number): PlanOptions {
  const tiler: Tiler = detail === 'low' ? 'global' : detail === 'auto' ? 'native' : detail === 'high' || detail === undefined ? 'model' : (() => {
    throw new WebVLMError('InvalidArgument', `detail must be 'low', 'auto' or 'high', got ${JSON.stringify(detail)}.`);
  })();
  return { tiler, maxImageTokens };
}

export interface ImagePlan {
  mode: Tiler;
  original: Size;
  /** PIL resizes (the pipeline's `resample` filter) applied in order before tiling (a same-size step is a copy). */
  resizes: Size[];
  /** The image the tiles are cut from (tile-multiple sides), or the single frame (tile×tile). */
  resized: Size;
  /** The tile grid; 0 × 0 means a single frame (the model's convention and prompt form). */
  rows: number;
  cols: number;
  frames: number;
  visualTokens: number;
  tileSize: number;
  /** True when maxImageTokens shrank the grid. */
  budgetLimited: boolean;
  /** Grid tiles (or the single frame) in source-image pixel coordinates: [x, y, w, h]. */
  tiles: Array<[number, number, number, number]>;
}

