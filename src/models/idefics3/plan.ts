/**
 * The Idefics3 family's tensor plan: the tensors `Idefics3ForConditionalGeneration` saves (transformers
 * `models/idefics3/modeling_idefics3.py`: `model.vision_model` = SigLIP-style embeddings/encoder/post_layernorm,
 * `model.connector.modality_projection.proj` (no bias), `model.text_model` = `LlamaModel`, and `lm_head` unless the
 * embeddings are tied), their shapes from the config, and where each goes on the GPU: q/k/v fused row-wise into one
 * target per layer (vision: [3D, D] + bias; text: [(heads + 2·kvHeads)·hd, H]), gate/up into one [2I, H]. The patch
 * embedding (a Conv2d, held as a linear layer over flattened patches) stays f32: it is the first layer and 0.6 M
 * parameters. For SmolVLM-256M this is 471 tensors, 512,969,856 bytes of bf16.
 */
import { checkHeadersAgainstPlan, PlanBuilder, PlanChecker, type TensorPlan, type TensorSpec } from '../plan.ts';
import type { LoadedTargets } from '../plan-loader.ts';
import type { SiglipLayer, SiglipWeights } from '../siglip.ts';
import type { LlamaWeights } from '../llama.ts';
import { decoderWeights, planDecoder } from '../decoder-plan.ts';
import type { Linear } from '../layers.ts';
import type { Idefics3Config } from './config.ts';

const VP = 'model.vision_model.';
const TP = 'model.text_model.';
const CONNECTOR = 'model.connector.modality_projection.proj';

export interface Idefics3Weights {
  vision: SiglipWeights;
  connector: Linear;
  text: LlamaWeights;
}

export function idefics3Plan(cfg: Idefics3Config): TensorPlan {
  const v = cfg.vision, t = cfg.text;
  const D = v.hiddenSize, H = t.hiddenSize, p = v.patchSize;
  const b = new PlanBuilder();
  const patch = b.linear(`${VP}embeddings.patch_embedding.weight`, 'vision', D, v.numChannels * p * p, { bias: true, quantizable: false });
  b.rows(patch, `${VP}embeddings.patch_embedding`, 0, [D, v.numChannels, p, p], 'conv');
  b.plain(`${VP}embeddings.position_embedding.weight`, 'vision', [v.numPatches, D], 'embedding');
  for (let l = 0; l < v.numHiddenLayers; l++) {
    const P = `${VP}encoder.layers.${l}.`;
    for (const ln of ['layer_norm1', 'layer_norm2']) {
      b.plain(`${P}${ln}.weight`, 'vision', [D], 'norm');
      b.plain(`${P}${ln}.bias`, 'vision', [D], 'norm_bias');
    }
    const qkv = b.linear(`${P}self_attn.qkv_proj.weight`, 'vision', 3 * D, D, { bias: true });
    ['q', 'k', 'v'].forEach((x, j) => b.rows(qkv, `${P}self_attn.${x}_proj`, j * D, [D, D]));
    b.layer(`${P}self_attn.out_proj`, 'vision', D, D, { bias: true });
    b.layer(`${P}mlp.fc1`, 'vision', v.intermediateSize, D, { bias: true });
    b.layer(`${P}mlp.fc2`, 'vision', D, v.intermediateSize, { bias: true });
  }
  b.plain(`${VP}post_layernorm.weight`, 'vision', [D], 'norm');
  b.plain(`${VP}post_layernorm.bias`, 'vision', [D], 'norm_bias');
  b.layer(CONNECTOR, 'vision', H, cfg.connectorInputSize);

  planDecoder(b, t, { prefix: TP, head: 'lm_head', tied: cfg.tieWordEmbeddings });
  return b.plan;
}

/** The weights the model code reads, from the loaded targets of `idefics3Plan`. */
export function idefics3Weights(w: LoadedTargets, cfg: Idefics3Config): Idefics3Weights {
  const vision: SiglipWeights = {
    patch: w.linear(`${VP}embeddings.patch_embedding.weight`),
    position: w.buffer(`${VP}embeddings.position_embedding.weight`),
    layers: [],
    post: { weight: w.buffer(`${VP}post_layernorm.weight`), bias: w.buffer(`${VP}post_layernorm.bias`) },
  };
  for (let l = 0; l < cfg.vision.numHiddenLayers; l++) {
    const P = `${VP}encoder.layers.${l}.`;
    const L: SiglipLayer = {
      ln1: { weight: w.buffer(`${P}layer_norm1.weight`), bias: w.buffer(`${P}layer_norm1.bias`) },
      qkv: w.linear(`${P}self_attn.qkv_proj.weight`), out: w.linear(`${P}self_attn.out_proj.weight`),
      ln2: { weight: w.buffer(`${P}layer_norm2.weight`), bias: w.buffer(`${P}layer_norm2.bias`) },
      fc1: w.linear(`${P}mlp.fc1.weight`), fc2: w.linear(`${P}mlp.fc2.weight`),
    };
    vision.layers.push(L);
  }
  const text = decoderWeights(w, cfg.text.numHiddenLayers, { prefix: TP, head: 'lm_head' });
  return { vision, connector: w.linear(`${CONNECTOR}.weight`), text };
}

/** Names, shapes and roles of the checkpoint's tensors (what `models/make-checkpoint.ts` writes). */
export const idefics3TensorSpecs = (cfg: Idefics3Config): TensorSpec[] => idefics3Plan(cfg).tensors.map(({ name, shape, role }) => ({ name, shape, role }));

/** The checker for an Idefics3 config. */
export const idefics3Checker = (cfg: Idefics3Config): PlanChecker => new PlanChecker(idefics3Plan(cfg));

/** config.json against the whole checkpoint's headers, before any data (see plan.ts `checkHeadersAgainstPlan`). */
export function checkCheckpointHeaders(cfg: Idefics3Config, files: readonly { file: string; header: { tensors: readonly { name: string; shape: readonly number[] }[] } }[], indexNames?: ReadonlySet<string>): void {
  checkHeadersAgainstPlan(() => idefics3Plan(cfg), cfg.text.numHiddenLayers + cfg.vision.numHiddenLayers, files, indexNames);
}
