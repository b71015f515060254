/**
 * SigLIP vision tower as Idefics3 uses it (transformers `Idefics3VisionTransformer`, a copy of SigLIP's):
 * patch embedding (Conv2d k=p, stride=p) + learned positions (identity ids for full tiles) → pre-LN encoder
 * layers (x + attn(LN1 x); x + fc2(gelu_tanh(fc1(LN2 x)))) → post_layernorm. Bidirectional attention, no mask:
 * every frame is a full tile, and each image's frames are encoded separately, so no padded frames exist.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { layerNorm } from '../kernels/norm.ts';
import { add, geluTanh } from '../kernels/elementwise.ts';
import { attentionPrefill } from '../kernels/attention_prefill.ts';
import { patchEmbed } from '../kernels/patch_embed.ts';
import { linear, type Linear, type Workspace } from './layers.ts';
import type { Idefics3VisionConfig } from './idefics3/config.ts';

export interface LayerNormWeights {
  weight: GPUBuffer;
  bias: GPUBuffer;
}

export interface SiglipLayer {
  ln1: LayerNormWeights;
  /** q, k, v projections fused row-wise: [3D, D] (+ bias [3D]). */
  qkv: Linear;
  out: Linear;
  ln2: LayerNormWeights;
  fc1: Linear;
  fc2: Linear;
}

export interface SiglipWeights {
  /** Conv2d weight [D, 3, p, p] (f32) and bias, held as a linear layer over flattened patches [3·p·p]. */
  patch: Linear;
  /** [numPatches, D] */
  position: GPUBuffer;
  layers: SiglipLayer[];
  post: LayerNormWeights;
}

/** Encodes `frames` tiles of normalized pixels [frames, 3, S, S] (on the GPU). Returns [frames·P, D]. */
export function siglipForward(gpu: GpuContext, rec: Recorder, ws: Workspace, w: SiglipWeights, cfg: Idefics3VisionConfig, pixels: Binding, frames: number): GPUBuffer {
  const D = cfg.hiddenSize;
  const P = cfg.numPatches;
  const rows = frames * P;
  const x = ws.f32(rows * D, 'vision/x');
  // Conv2d(k = stride = p) + bias + position embedding (identity ids: every frame is a full tile), one kernel.
  patchEmbed(gpu, rec, { pixels, weight: w.patch.f32!, bias: w.patch.bias, pos: w.position, out: x, frames, C: cfg.numChannels, H: cfg.imageSize, W: cfg.imageSize, p: cfg.patchSize, D });
  const n = ws.f32(rows * D, 'vision/norm');
  const qkv = ws.f32(rows * 3 * D, 'vision/qkv');
  const attn = ws.f32(rows * D, 'vision/attn');
  const tmp = ws.f32(rows * D, 'vision/tmp');
  const mlp = ws.f32(rows * cfg.intermediateSize, 'vision/mlp');
  const eps = cfg.layerNormEps;
  for (const L of w.layers) {
    layerNorm(gpu, rec, { x, weight: L.ln1.weight, bias: L.ln1.bias, out: n, rows, D, eps });
    linear(gpu, rec, L.qkv, n, qkv, rows);
    attentionPrefill(gpu, rec, {
      q: qkv, k: qkv, v: qkv, out: attn,
      batch: frames, seqLen: P, heads: cfg.numAttentionHeads, kvHeads: cfg.numAttentionHeads, headDim: cfg.headDim,
      causal: false, qStride: 3 * D, qOffset: 0, kOffset: D, vOffset: 2 * D, kvLayout: { kind: 'tokens', kvStride: 3 * D },
    });
    linear(gpu, rec, L.out, attn, tmp, rows);
    add(gpu, rec, { a: x, b: tmp, n: rows * D });
    layerNorm(gpu, rec, { x, weight: L.ln2.weight, bias: L.ln2.bias, out: n, rows, D, eps });
    linear(gpu, rec, L.fc1, n, mlp, rows);
    geluTanh(gpu, rec, { x: mlp, n: rows * cfg.intermediateSize });
    linear(gpu, rec, L.fc2, mlp, tmp, rows);
    add(gpu, rec, { a: x, b: tmp, n: rows * D });
  }
  const out = ws.f32(rows * D, 'vision/out');
  layerNorm(gpu, rec, { x, weight: w.post.weight, bias: w.post.bias, out, rows, D, eps });
  return out;
}
