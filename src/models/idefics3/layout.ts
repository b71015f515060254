/**
 * The tensors an Idefics3 (SmolVLM) checkpoint holds, by name and shape, as `Idefics3ForConditionalGeneration`
 * saves them (transformers `models/idefics3/modeling_idefics3.py`: `model.vision_model` = SigLIP-style
 * embeddings/encoder/post_layernorm, `model.connector.modality_projection.proj` (no bias), `model.text_model` =
 * `LlamaModel`, and `lm_head` unless the embeddings are tied). Used to check a checkpoint against its config
 * before its weights reach the GPU, and by `models/make-checkpoint.ts` to write random checkpoints.
 * For SmolVLM-256M this is 471 tensors, 512,969,856 bytes of bf16.
 */
import { WebVLMError } from '../../errors.ts';
import type { Idefics3Config } from './config.ts';

/** What the checks read of a safetensors header (structurally the engine's `SafetensorsHeader`). */
interface HeaderTensor {
  name: string;
  shape: number[];
}
interface SafetensorsHeader {
  tensors: readonly HeaderTensor[];
}
type TensorInfo = HeaderTensor;

/** What a tensor is, so generators can initialise it sensibly. */
export type TensorRole = 'linear' | 'bias' | 'norm' | 'norm_bias' | 'embedding' | 'conv';

export interface TensorSpec {
  name: string;
  shape: number[];
  role: TensorRole;
}

export function idefics3TensorSpecs(cfg: Idefics3Config): TensorSpec[] {
  const v = cfg.vision;
  const t = cfg.text;
  const out: TensorSpec[] = [];
  const add = (name: string, shape: number[], role: TensorRole) => out.push({ name, shape, role });

  const vp = 'model.vision_model.';
  add(`${vp}embeddings.patch_embedding.weight`, [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize], 'conv');
  add(`${vp}embeddings.patch_embedding.bias`, [v.hiddenSize], 'bias');
  add(`${vp}embeddings.position_embedding.weight`, [v.numPatches, v.hiddenSize], 'embedding');
  for (let l = 0; l < v.numHiddenLayers; l++) {
    const p = `${vp}encoder.layers.${l}.`;
    for (const ln of ['layer_norm1', 'layer_norm2']) {
      add(`${p}${ln}.weight`, [v.hiddenSize], 'norm');
      add(`${p}${ln}.bias`, [v.hiddenSize], 'norm_bias');
    }
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      add(`${p}self_attn.${proj}.weight`, [v.hiddenSize, v.hiddenSize], 'linear');
      add(`${p}self_attn.${proj}.bias`, [v.hiddenSize], 'bias');
    }
    add(`${p}mlp.fc1.weight`, [v.intermediateSize, v.hiddenSize], 'linear');
    add(`${p}mlp.fc1.bias`, [v.intermediateSize], 'bias');
    add(`${p}mlp.fc2.weight`, [v.hiddenSize, v.intermediateSize], 'linear');
    add(`${p}mlp.fc2.bias`, [v.hiddenSize], 'bias');
  }
  add(`${vp}post_layernorm.weight`, [v.hiddenSize], 'norm');
  add(`${vp}post_layernorm.bias`, [v.hiddenSize], 'norm_bias');

  add('model.connector.modality_projection.proj.weight', [t.hiddenSize, cfg.connectorInputSize], 'linear');

  const tp = 'model.text_model.';
  const q = t.numAttentionHeads * t.headDim;
  const kv = t.numKeyValueHeads * t.headDim;
  add(`${tp}embed_tokens.weight`, [t.vocabSize, t.hiddenSize], 'embedding');
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const p = `${tp}layers.${l}.`;
    add(`${p}input_layernorm.weight`, [t.hiddenSize], 'norm');
    add(`${p}self_attn.q_proj.weight`, [q, t.hiddenSize], 'linear');
    add(`${p}self_attn.k_proj.weight`, [kv, t.hiddenSize], 'linear');
    add(`${p}self_attn.v_proj.weight`, [kv, t.hiddenSize], 'linear');
    add(`${p}self_attn.o_proj.weight`, [t.hiddenSize, q], 'linear');
    add(`${p}post_attention_layernorm.weight`, [t.hiddenSize], 'norm');
    add(`${p}mlp.gate_proj.weight`, [t.intermediateSize, t.hiddenSize], 'linear');
    add(`${p}mlp.up_proj.weight`, [t.intermediateSize, t.hiddenSize], 'linear');
    add(`${p}mlp.down_proj.weight`, [t.hiddenSize, t.intermediateSize], 'linear');
  }
  add(`${tp}norm.weight`, [t.hiddenSize], 'norm');
  if (!cfg.tieWordEmbeddings) add('lm_head.weight', [t.vocabSize, t.hiddenSize], 'linear');
  return out;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks tensors (one file's header, or all shards' so far) against the specs: every name known with the
 * expected shape. With `complete`, every spec must also have been seen. Throws `CorruptCheckpoint`: the
 * weights are not what config.json says they are.
 */
export class TensorChecker {
  private readonly specs: Map<string, TensorSpec>;
  private readonly seen = new Set<string>();

  /** `tolerated`: names that may appear without a spec (they are not checked). */
  constructor(specs: readonly TensorSpec[], private readonly tolerated: readonly string[] = []) {
    this.specs = new Map(specs.map((s) => [s.name, s]));
  }

  check(file: string, tensors: readonly Pick<TensorInfo, 'name' | 'shape'>[]): void {
    for (const t of tensors) {
      const spec = this.specs.get(t.name);
      if (!spec) {
        if (this.tolerated.includes(t.name)) continue;
        throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} is not part of the model config.json describes.`, { details: { file, tensor: t.name } });
      }
      if (this.seen.has(t.name)) throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} appears twice in the checkpoint.`, { details: { file, tensor: t.name } });
      if (spec.shape.length !== t.shape.length || spec.shape.some((d, i) => d !== t.shape[i])) {
        throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} has shape ${shapeText(t.shape)}, config.json implies ${shapeText(spec.shape)}.`, {
          details: { file, tensor: t.name, shape: t.shape, expected: spec.shape },
        });
      }
      this.seen.add(t.name);
    }
  }

  checkHeader(file: string, header: SafetensorsHeader): void {
    this.check(file, header.tensors);
  }

  /** Names of specs not seen yet. */
  missing(): string[] {
    return [...this.specs.keys()].filter((n) => !this.seen.has(n));
  }

  /** Fails now if the checkpoint's full name list (an index's weight_map, a single file's header) lacks a spec. */
  requireNames(where: string, names: ReadonlySet<string>): void {
    this.reportMissing(where, [...this.specs.keys()].filter((n) => !names.has(n)));
  }

  requireComplete(where: string): void {
    this.reportMissing(where, this.missing());
  }

  private reportMissing(where: string, missing: string[]): void {
    if (missing.length) {
      throw new WebVLMError('CorruptCheckpoint', `${where}: ${missing.length} tensor(s) missing, e.g. ${missing.slice(0, 3).join(', ')}.`, {
        details: { missing: missing.slice(0, 20), count: missing.length },
      });
    }
  }
}

/** The checker for an Idefics3 config; with tied embeddings a stored `lm_head.weight` copy is tolerated. */
export function idefics3Checker(cfg: Idefics3Config): TensorChecker {
  return new TensorChecker(idefics3TensorSpecs(cfg), cfg.tieWordEmbeddings ? ['lm_head.weight'] : []);
}

/**
 * config.json against the whole checkpoint's headers (every file, read before any data, see checkpoint.ts
 * `readShardHeaders`), so nothing is sized or allocated from numbers the tensors do not back. `indexNames`: a
 * sharded checkpoint's weight_map names, checked first (as the streaming loader does). Throws `CorruptCheckpoint`
 * naming the file and tensor.
 */
export function checkCheckpointHeaders(cfg: Idefics3Config, files: readonly { file: string; header: Pick<SafetensorsHeader, 'tensors'> }[], indexNames?: ReadonlySet<string>): void {
  const count = files.reduce((n, f) => n + f.header.tensors.length, 0);
  // Every layer has tensors: a layer count no header can back is refused before specs are built from it.
  const layers = cfg.text.numHiddenLayers + cfg.vision.numHiddenLayers;
  if (layers > count) {
    throw new WebVLMError('CorruptCheckpoint', `config.json describes ${layers} layers, but the safetensors header(s) hold only ${count} tensors.`, {
      details: { layers, tensors: count },
    });
  }
  const checker = idefics3Checker(cfg);
  if (indexNames) checker.requireNames('model.safetensors.index.json', indexNames);
  for (const f of files) checker.check(f.file, f.header.tensors);
  checker.requireNames(files.length === 1 ? files[0].file : 'checkpoint', new Set(files.flatMap((f) => f.header.tensors.map((t) => t.name))));
}
