/**
 * A pre-LN ViT tower on the GPU. With no options it is SigLIP as Idefics3 uses it (transformers
 * `Idefics3VisionTransformer`, a copy of SigLIP's): patch embedding (Conv2d k=p, stride=p) + learned positions
 * (identity ids for full tiles) → encoder layers (x + attn(LN1 x); x + fc2(gelu_tanh(fc1(LN2 x)))) → post_layernorm.
 * Bidirectional attention, no mask: every frame is a full tile, each encoded on its own, so no padded frames exist.
 *
 * Options (`VitConfig`; absent = the SigLIP behaviour above, the same dispatches), as InternViT needs them
 * (InternVL `modeling_intern_vit.py`):
 * - `classToken`: a learned class embedding is prepended to each frame's patches and the position table has
 *   patches + 1 rows; the tower's output drops it again (InternVL keeps `vit_embeds[:, 1:]`), so callers always
 *   get [frames · patches, D];
 * - `layerScale`: each branch is scaled per channel before its residual add (x + attn(LN1 x) ⊙ ls1; x + mlp ⊙ ls2);
 * - `hiddenAct`: 'gelu_pytorch_tanh' (SigLIP) or 'gelu' (exact, erf: InternViT, CLIP);
 * - `postNorm: false`: no final LayerNorm (InternViT's encoder has none);
 * - q/k/v (and out/fc) biases are carried by the `Linear`s the family's plan builds (absent = no bias).
 */
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { WebVLMError } from '../errors.ts';
import { layerNorm } from '../kernels/norm.ts';
import { add, biasAdd, copy2d, gelu, geluTanh } from '../kernels/elementwise.ts';
import { attentionPrefill } from '../kernels/attention_prefill.ts';
import { patchEmbed } from '../kernels/patch_embed.ts';
import { linear, type Linear, type Workspace } from './layers.ts';

/** The tower's shape and options (a family's parsed vision config satisfies it). */
export interface VitConfig {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  /** hiddenSize / numAttentionHeads. */
  headDim: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  /** (imageSize / patchSize)². */
  numPatches: number;
  layerNormEps: number;
  hiddenAct: 'gelu_pytorch_tanh' | 'gelu';
  /** Absent: false. */
  classToken?: boolean;
  /** Absent: false. */
  layerScale?: boolean;
  /** Absent: true. */
  postNorm?: boolean;
}

export interface LayerNormWeights {
  weight: GPUBuffer;
  bias: GPUBuffer;
}

export interface VitLayer {
  ln1: LayerNormWeights;
  /** q, k, v projections fused row-wise: [3D, D] (+ bias [3D]). */
  qkv: Linear;
  out: Linear;
  ln2: LayerNormWeights;
  fc1: Linear;
  fc2: Linear;
  /** Layer scales [D] (`layerScale`). */
  ls1?: GPUBuffer;
  ls2?: GPUBuffer;
}

export interface VitWeights {
  /** Conv2d weight [D, 3, p, p] (f32) and bias, held as a linear layer over flattened patches [3·p·p]. */
  patch: Linear;
  /** [numPatches (+ 1 with a class token), D] */
  position: GPUBuffer;
  /** [D] (`classToken`). */
  classEmbedding?: GPUBuffer;
  layers: VitLayer[];
  /** Absent with `postNorm: false`. */
  post?: LayerNormWeights;
}

/** The SigLIP names (the default configuration of the same tower). */
export type SiglipLayer = VitLayer;
export type SiglipWeights = VitWeights;

function requireOptions(w: VitWeights, cfg: VitConfig): void {
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new WebVLMError('Internal', `vision tower: ${what}.`);
  };
  need(!!cfg.classToken === !!w.classEmbedding, cfg.classToken ? 'classToken needs a class embedding' : 'a class embedding without classToken');
  need((cfg.postNorm ?? true) === !!w.post, cfg.postNorm ?? true ? 'no post_layernorm weights' : 'post_layernorm weights with postNorm: false');
  for (const L of w.layers) need(!!cfg.layerScale === !!(L.ls1 && L.ls2), cfg.layerScale ? 'layerScale needs ls1/ls2 in every layer' : 'layer scales without layerScale');
}

/** Encodes `frames` tiles of normalized pixels [frames, 3, S, S] (on the GPU). Returns [frames·P, D] (no class token). */
export function vitForward(gpu: GpuContext, rec: Recorder, ws: Workspace, w: VitWeights, cfg: VitConfig, pixels: Binding, frames: number): GPUBuffer {
  requireOptions(w, cfg);
  const D = cfg.hiddenSize;
  const P = cfg.numPatches;
  const cls = cfg.classToken ? 1 : 0;
  const T = P + cls; // tokens per frame inside the encoder
  const rows = frames * T;
  const x = ws.f32(rows * D, 'vision/x');
  const embed = { pixels, weight: w.patch.f32!, bias: w.patch.bias, out: x, frames, C: cfg.numChannels, H: cfg.imageSize, W: cfg.imageSize, p: cfg.patchSize, D };
  if (!cls) {
    // Conv2d(k = stride = p) + bias + position embedding (identity ids: every frame is a full tile), one kernel.
    patchEmbed(gpu, rec, { ...embed, pos: w.position });
  } else {
    // [cls, patch_1 … patch_P] + positions [P + 1, D] per frame: the patches go in at row 1 of each frame.
    const patches = ws.f32(frames * P * D, 'vision/patches');
    patchEmbed(gpu, rec, { ...embed, out: patches });
    copy2d(gpu, rec, { src: patches, dst: x, rows: frames, cols: P * D, dstStride: T * D, dstOffset: D });
    for (let f = 0; f < frames; f++) rec.copy(w.classEmbedding!, 0, x, f * T * D * 4, D * 4);
    biasAdd(gpu, rec, { x, bias: w.position, rows: frames, N: T * D });
  }
  const n = ws.f32(rows * D, 'vision/norm');
  const qkv = ws.f32(rows * 3 * D, 'vision/qkv');
  const attn = ws.f32(rows * D, 'vision/attn');
  const tmp = ws.f32(rows * D, 'vision/tmp');
  const mlp = ws.f32(rows * cfg.intermediateSize, 'vision/mlp');
  const eps = cfg.layerNormEps;
  const residual = (branch: GPUBuffer, ls: GPUBuffer | undefined) =>
    add(gpu, rec, ls ? { a: x, b: branch, n: rows * D, colScale: ls, cols: D } : { a: x, b: branch, n: rows * D });
  for (const L of w.layers) {
    layerNorm(gpu, rec, { x, weight: L.ln1.weight, bias: L.ln1.bias, out: n, rows, D, eps });
    linear(gpu, rec, L.qkv, n, qkv, rows);
    attentionPrefill(gpu, rec, {
      q: qkv, k: qkv, v: qkv, out: attn,
      batch: frames, seqLen: T, heads: cfg.numAttentionHeads, kvHeads: cfg.numAttentionHeads, headDim: cfg.headDim,
      causal: false, qStride: 3 * D, qOffset: 0, kOffset: D, vOffset: 2 * D, kvLayout: { kind: 'tokens', kvStride: 3 * D },
    });
    linear(gpu, rec, L.out, attn, tmp, rows);
    residual(tmp, L.ls1);
    layerNorm(gpu, rec, { x, weight: L.ln2.weight, bias: L.ln2.bias, out: n, rows, D, eps });
    linear(gpu, rec, L.fc1, n, mlp, rows);
    if (cfg.hiddenAct === 'gelu') gelu(gpu, rec, { x: mlp, n: rows * cfg.intermediateSize });
    else geluTanh(gpu, rec, { x: mlp, n: rows * cfg.intermediateSize });
    linear(gpu, rec, L.fc2, mlp, tmp, rows);
    residual(tmp, L.ls2);
  }
  let out = x;
  if (w.post) {
    out = ws.f32(rows * D, 'vision/out');
    layerNorm(gpu, rec, { x, weight: w.post.weight, bias: w.post.bias, out, rows, D, eps });
  }
  if (!cls) return out;
  // Drop each frame's class token: rows 1..P of every frame, packed.
  const patchesOut = ws.f32(frames * P * D, 'vision/patch-out');
  copy2d(gpu, rec, { src: out, dst: patchesOut, rows: frames, cols: P * D, srcStride: T * D, srcOffset: D });
  return patchesOut;
}

/** The SigLIP name of `vitForward`. */
export const siglipForward = vitForward;
