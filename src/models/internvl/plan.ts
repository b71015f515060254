/**
 * The InternVL family's tensor plan, for both layouts (config.ts), and where each tensor goes on the GPU.
 *
 * Original (`InternVLChatModel`; InternVL `modeling_intern_vit.py`, `modeling_internvl_chat.py`):
 *   vision_model.embeddings.{class_embedding [1,1,D], patch_embedding (Conv2d + bias), position_embedding [1,P+1,D]}
 *   vision_model.encoder.layers.N.{norm1, norm2 (LayerNorm), attn.qkv [3D, D] (+ bias with qkv_bias), attn.proj,
 *     mlp.fc1, mlp.fc2 (+ biases), ls1, ls2 [D]}   — no final norm
 *   mlp1.{0 (LayerNorm 4D), 1 (Linear 4D→H), 3 (Linear H→H)}
 *   language_model.model.* (Qwen2Model) and language_model.lm_head.weight (Qwen2ForCausalLM)
 * Native (`InternVLForConditionalGeneration`; transformers `convert_internvl_weights_to_hf.py` renames the above):
 *   vision_tower.embeddings.{cls_token, patch_embeddings.projection, position_embeddings}
 *   vision_tower.encoder.layer.N.{layernorm_before, layernorm_after, attention.{q,k,v}_proj (qkv split in three),
 *     attention.projection_layer, mlp.fc1, mlp.fc2, lambda_1, lambda_2}   (+ vision_tower.layernorm without mean pooling)
 *   multi_modal_projector.{layer_norm, linear_1, linear_2}
 *   language_model.model.*, language_model.lm_head.weight — the names the -hf repos were saved with, which transformers
 *   ≥ 4.52 maps onto `model.language_model` / `lm_head` when loading (`_checkpoint_conversion_mapping`). A checkpoint
 *   re-saved by such a version (`model.vision_tower.*`, `model.language_model.*`, `lm_head.weight`) is not read yet.
 * Decoder: Qwen2 — q/k/v with biases (fused row-wise into one target, biases too), o_proj without; gate/up fused.
 * A tied head is filled from embed_tokens; a saved copy is tolerated.
 */
import { checkHeadersAgainstPlan, PlanBuilder, type TensorPlan, type TensorSpec } from '../plan.ts';
import type { LoadedTargets } from '../plan-loader.ts';
import type { VitLayer, VitWeights, LayerNormWeights } from '../siglip.ts';
import type { LlamaWeights } from '../llama.ts';
import { decoderWeights, planDecoder } from '../decoder-plan.ts';
import type { Linear } from '../layers.ts';
import type { InternVLConfig } from './config.ts';

export interface InternVLWeights {
  vision: VitWeights;
  /** mlp1.0 / multi_modal_projector.layer_norm (eps 1e-5: nn.LayerNorm's default in both layouts). */
  projNorm: LayerNormWeights;
  proj1: Linear;
  proj2: Linear;
  text: LlamaWeights;
}

/** The checkpoint's names for one layout. */
interface Names {
  cls: string; patch: string; pos: string;
  layer: (l: number) => string;
  ln1: string; ln2: string; out: string; fc1: string; fc2: string; ls1: string; ls2: string;
  post: string;
  projNorm: string; proj1: string; proj2: string;
  text: string; head: string;
}

const ORIGINAL: Names = {
  cls: 'vision_model.embeddings.class_embedding', patch: 'vision_model.embeddings.patch_embedding', pos: 'vision_model.embeddings.position_embedding',
  layer: (l) => `vision_model.encoder.layers.${l}.`,
  ln1: 'norm1', ln2: 'norm2', out: 'attn.proj', fc1: 'mlp.fc1', fc2: 'mlp.fc2', ls1: 'ls1', ls2: 'ls2', post: '',
  projNorm: 'mlp1.0', proj1: 'mlp1.1', proj2: 'mlp1.3',
  text: 'language_model.model.', head: 'language_model.lm_head',
};

const NATIVE: Names = {
  cls: 'vision_tower.embeddings.cls_token', patch: 'vision_tower.embeddings.patch_embeddings.projection', pos: 'vision_tower.embeddings.position_embeddings',
  layer: (l) => `vision_tower.encoder.layer.${l}.`,
  ln1: 'layernorm_before', ln2: 'layernorm_after', out: 'attention.projection_layer', fc1: 'mlp.fc1', fc2: 'mlp.fc2', ls1: 'lambda_1', ls2: 'lambda_2',
  post: 'vision_tower.layernorm',
  projNorm: 'multi_modal_projector.layer_norm', proj1: 'multi_modal_projector.linear_1', proj2: 'multi_modal_projector.linear_2',
  text: 'language_model.model.', head: 'language_model.lm_head',
};

const namesOf = (cfg: InternVLConfig): Names => (cfg.layout === 'original' ? ORIGINAL : NATIVE);
/** The fused q/k/v target of vision layer `l` (original: the checkpoint's own attn.qkv). */
const qkvTarget = (n: Names, l: number, layout: string) => `${n.layer(l)}${layout === 'original' ? 'attn.qkv' : 'attention.qkv_proj'}.weight`;

export function internvlPlan(cfg: InternVLConfig): TensorPlan {
  const v = cfg.vision, t = cfg.text, n = namesOf(cfg);
  const D = v.hiddenSize, H = t.hiddenSize, p = v.patchSize, C4 = cfg.connectorInputSize;
  const b = new PlanBuilder();
  b.plain(n.cls, 'vision', [1, 1, D], 'embedding');
  const patch = b.linear(`${n.patch}.weight`, 'vision', D, v.numChannels * p * p, { bias: true, quantizable: false });
  b.rows(patch, n.patch, 0, [D, v.numChannels, p, p], 'conv');
  b.plain(n.pos, 'vision', [1, v.numPatches + 1, D], 'embedding');
  for (let l = 0; l < v.numHiddenLayers; l++) {
    const P = n.layer(l);
    for (const ln of [n.ln1, n.ln2]) {
      b.plain(`${P}${ln}.weight`, 'vision', [D], 'norm');
      b.plain(`${P}${ln}.bias`, 'vision', [D], 'norm_bias');
    }
    const qkv = b.linear(qkvTarget(n, l, cfg.layout), 'vision', 3 * D, D, { bias: v.qkvBias });
    // Original: one [3D, D] tensor, rows q | k | v (InternAttention reshapes to (3, heads, hd)); native: three tensors.
    if (cfg.layout === 'original') b.rows(qkv, `${P}attn.qkv`, 0, [3 * D, D]);
    else ['q', 'k', 'v'].forEach((x, j) => b.rows(qkv, `${P}attention.${x}_proj`, j * D, [D, D]));
    b.layer(`${P}${n.out}`, 'vision', D, D, { bias: true });
    b.layer(`${P}${n.fc1}`, 'vision', v.intermediateSize, D, { bias: true });
    b.layer(`${P}${n.fc2}`, 'vision', D, v.intermediateSize, { bias: true });
    b.plain(`${P}${n.ls1}`, 'vision', [D], 'norm');
    b.plain(`${P}${n.ls2}`, 'vision', [D], 'norm');
  }
  if (v.postNorm) {
    b.plain(`${n.post}.weight`, 'vision', [D], 'norm');
    b.plain(`${n.post}.bias`, 'vision', [D], 'norm_bias');
  }
  b.plain(`${n.projNorm}.weight`, 'vision', [C4], 'norm');
  b.plain(`${n.projNorm}.bias`, 'vision', [C4], 'norm_bias');
  b.layer(n.proj1, 'vision', H, C4, { bias: true });
  b.layer(n.proj2, 'vision', H, H, { bias: true });

  // Qwen2: q/k/v with biases.
  planDecoder(b, t, { prefix: n.text, head: n.head, tied: t.tieWordEmbeddings, qkvBias: true });
  return b.plan;
}

/** The weights the model code reads, from the loaded targets of `internvlPlan`. */
export function internvlWeights(w: LoadedTargets, cfg: InternVLConfig): InternVLWeights {
  const n = namesOf(cfg);
  const norm = (prefix: string): LayerNormWeights => ({ weight: w.buffer(`${prefix}.weight`), bias: w.buffer(`${prefix}.bias`) });
  const layers: VitLayer[] = [];
  for (let l = 0; l < cfg.vision.numHiddenLayers; l++) {
    const P = n.layer(l);
    layers.push({
      ln1: norm(`${P}${n.ln1}`), qkv: w.linear(qkvTarget(n, l, cfg.layout)), out: w.linear(`${P}${n.out}.weight`),
      ln2: norm(`${P}${n.ln2}`), fc1: w.linear(`${P}${n.fc1}.weight`), fc2: w.linear(`${P}${n.fc2}.weight`),
      ls1: w.buffer(`${P}${n.ls1}`), ls2: w.buffer(`${P}${n.ls2}`),
    });
  }
  const vision: VitWeights = {
    patch: w.linear(`${n.patch}.weight`), position: w.buffer(n.pos), classEmbedding: w.buffer(n.cls), layers,
    post: cfg.vision.postNorm ? norm(n.post) : undefined,
  };
  const text = decoderWeights(w, cfg.text.numHiddenLayers, { prefix: n.text, head: n.head });
  return { vision, projNorm: norm(n.projNorm), proj1: w.linear(`${n.proj1}.weight`), proj2: w.linear(`${n.proj2}.weight`), text };
}

/** Names, shapes and roles of the checkpoint's tensors (what `models/make-internvl.ts` writes). */
export const internvlTensorSpecs = (cfg: InternVLConfig): TensorSpec[] => internvlPlan(cfg).tensors.map(({ name, shape, role }) => ({ name, shape, role }));

export const internvlLayerCount = (cfg: InternVLConfig): number => cfg.text.numHiddenLayers + cfg.vision.numHiddenLayers;

/** config.json against the whole checkpoint's headers, before any data (plan.ts `checkHeadersAgainstPlan`). */
export function checkInternVLHeaders(cfg: InternVLConfig, files: readonly { file: string; header: { tensors: readonly { name: string; shape: readonly number[] }[] } }[], indexNames?: ReadonlySet<string>): void {
  checkHeadersAgainstPlan(() => internvlPlan(cfg), internvlLayerCount(cfg), files, indexNames);
}
