/**
 * Vision patch embedding (shaders/patch_embed.wgsl): Conv2d(C, D, kernel p, stride p, valid) on normalised
 * pixels x [frames, C, H, W] → out [frames, ⌊H/p⌋·⌊W/p⌋, D] (HF `flatten(2).transpose(1, 2)` order), plus the
 * conv bias and the learned position embedding rows 0..patches−1 (identity position ids: what SmolVLM's
 * full tiles use; see ../shared/idefics3-semantics.md). A direct tiled GEMM (M = patches, N = D, K = C·p²)
 * reading pixels in place. weight is the PyTorch tensor [D, C, p, p] as stored. Variants (default:
 * `gpu.variants.matmul`): 'tiled' (GPUs: 64×64 tiles through workgroup memory) and 'register' (CPU adapters:
 * a 4×4 register block per invocation, no barriers; vec4 loads when p and W are multiples of 4).
 */
import source from '../../shaders/patch_embed.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, dummy, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';
import type { MatmulVariant } from './matmul.ts';

export interface PatchEmbedArgs {
  /** f32 [frames, C, H, W]. */
  pixels: Binding;
  /** f32 [D, C, p, p]. */
  weight: Binding;
  /** f32 [D], conv bias. */
  bias?: Binding;
  /** f32 [≥ patches, D]: position embedding table; row P is added to patch P. */
  pos?: Binding;
  out: Binding;
  frames: number;
  /** Input channels: 3 for RGB. */
  C?: number;
  H: number;
  W: number;
  /** Patch size (kernel = stride). */
  p: number;
  D: number;
  /** Force a variant (tests, benchmarks); default: the adapter's choice (`gpu.variants.matmul`). */
  variant?: MatmulVariant;
}

export function patchEmbed(gpu: GpuContext, rec: Recorder, args: PatchEmbedArgs): void {
  const { frames, H, W, p, D } = args;
  const C = args.C ?? 3;
  requireDims('patchEmbed', { frames, C, H, W, p, D });
  if (p > H || p > W) throw new WebVLMError('ShapeMismatch', `patchEmbed: patch size ${p} exceeds the ${H}×${W} image.`);
  const nh = Math.floor(H / p), nw = Math.floor(W / p);
  const patches = nh * nw, M = frames * patches, K = C * p * p;
  requireBytes('patchEmbed', 'pixels', args.pixels, frames * C * H * W * 4);
  requireBytes('patchEmbed', 'weight', args.weight, D * K * 4);
  if (args.bias) requireBytes('patchEmbed', 'bias', args.bias, D * 4);
  if (args.pos) requireBytes('patchEmbed', 'pos', args.pos, patches * D * 4);
  requireBytes('patchEmbed', 'out', args.out, M * D * 4);
  requireDistinct('patchEmbed', args.out, { pixels: args.pixels, weight: args.weight, bias: args.bias, pos: args.pos });
  const variant = args.variant ?? gpu.variants.matmul;
  if (variant !== 'tiled' && variant !== 'register') throw new WebVLMError('InvalidArgument', `patchEmbed: unknown variant ${String(variant)}.`);
  // Patches per workgroup: a 64-row tile (tiled) or 8 invocations × 4 rows (register).
  const tile = variant === 'tiled' ? 64 : 32;
  const wy = ceilDiv(M, tile);
  if (wy > gpu.caps.limits.maxComputeWorkgroupsPerDimension) {
    throw new WebVLMError('ShapeMismatch', `patchEmbed: ${M} patches exceed one dispatch (${gpu.caps.limits.maxComputeWorkgroupsPerDimension * tile}); split the frames.`);
  }
  // vec4 loads need every patch row 16-byte aligned: p and W multiples of 4 (SmolVLM: p 16, W 512).
  const entryPoint = variant === 'tiled' ? 'main' : p % 4 === 0 && W % 4 === 0 ? 'main_register4' : 'main_register';
  const pipeline = gpu.pipelines.get({ name: 'patch_embed', source, entryPoint });
  const params = rec.uniform(new Uint32Array([M, D, K, p, H, W, nw, patches, args.bias ? 1 : 0, args.pos ? 1 : 0, C, 0]));
  rec.dispatch(
    pipeline,
    [args.pixels, args.weight, args.bias ?? dummy(gpu), args.pos ?? dummy(gpu), args.out, params],
    [ceilDiv(D, tile), wy],
    `patch_embed/${variant} ${frames}x${C}x${H}x${W} p${p} D${D}`,
  );
}
