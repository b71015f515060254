/**
 * Typed parser/validator for an Idefics3 (SmolVLM) `config.json`.
 *
 * Defaults are Hugging Face's (transformers `models/idefics3/configuration_idefics3.py` for the top level and
 * `Idefics3VisionConfig`, `models/llama/configuration_llama.py` / `models/granite/configuration_granite.py` for
 * `text_config`), so a key missing from the JSON means what it means to transformers. What we refuse — with
 * `WebVLMError('UnsupportedModel')` — is what transformers would refuse, what this family's checkpoints do not use
 * and we have not checked for it (other activations, RoPE scaling, biases in the decoder projections: the shared
 * decoder implements them, models/llama.ts, but no Idefics3 checkpoint has them), and keys that are inconsistent
 * with each other (e.g. heads not dividing the hidden size, an image token outside the vocabulary). `vision_config`
 * and `text_config` must be present: transformers would fall back to Idefics3-8B / Llama-7B sizes, which is never
 * what a small-VLM checkpoint means.
 *
 * `text_config.model_type` 'llama' (SmolVLM, and Granite-Docling-258M, whose "Granite 165M" decoder is saved as a
 * Llama) or 'granite' (`GraniteModel`: Llama + four multipliers). Idefics3 builds its text model with
 * `AutoModel.from_config(text_config)` and applies its own `lm_head`, so a Granite text config's
 * `embedding_multiplier` (× the merged inputs_embeds, image rows included), `attention_multiplier` (the attention
 * scale, replacing hd^-0.5; HF default 1.0) and `residual_multiplier` act, while `logits_scaling` (applied only by
 * `GraniteForCausalLM.forward`) does not: it is parsed, validated and kept as `logitsScaling`, never applied.
 */
import { WebVLMError } from '../../errors.ts';
import type { DecoderConfig } from '../llama.ts';
import type { VitConfig } from '../siglip.ts';
import { parseRope } from '../rope-scaling.ts';

export interface Idefics3VisionConfig extends VitConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** hiddenSize / numAttentionHeads (SigLIP has no separate head_dim key). */
  headDim: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  /** imageSize / patchSize */
  patchesPerSide: number;
  /** patchesPerSide² = rows of the learned position embedding. */
  numPatches: number;
  hiddenAct: 'gelu_pytorch_tanh';
  layerNormEps: number;
}

export interface Idefics3TextConfig extends DecoderConfig {
  /** text_config `model_type`. */
  textModelType: 'llama' | 'granite';
  vocabSize: number;
  /** (The shape fields are DecoderConfig's; `headDim`: config `head_dim`, else hiddenSize / numAttentionHeads.) */
  hiddenAct: 'silu';
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  /** text_config `eos_token_id` as a list (may be empty); generation_config.json may say otherwise. */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** Granite's attention_multiplier (llama: absent, i.e. hd^-0.5). */
  attentionScale?: number;
  /** Granite's embedding_multiplier / residual_multiplier (llama: absent, i.e. 1). */
  embeddingMultiplier?: number;
  residualMultiplier?: number;
  /** Granite's logits_scaling as written (default 1): Idefics3 does not apply it (see the file comment). */
  logitsScaling?: number;
}

export interface Idefics3Config {
  /** 'idefics3'; a family of the same architecture that reuses this parse sets its own (smolvlm: 'smolvlm'). */
  modelType: string;
  imageTokenId: number;
  scaleFactor: number;
  /** Top-level `tie_word_embeddings` (Idefics3Config default false): lm_head shares embed_tokens. */
  tieWordEmbeddings: boolean;
  /** `torch_dtype` / `dtype` as written in the file, if any (informational). */
  dtype: string | null;
  vision: Idefics3VisionConfig;
  text: Idefics3TextConfig;
  /** Image tokens per frame: (patchesPerSide / scaleFactor)². */
  imageSeqLen: number;
  /** Connector input width: vision hiddenSize · scaleFactor². */
  connectorInputSize: number;
}

type Json = Record<string, unknown>;

function fail(message: string, details?: Record<string, unknown>): never {
  throw new WebVLMError('UnsupportedModel', `config.json: ${message}`, { details });
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Upper bound on any size in a config (layers, widths, vocabulary, positions). Far above every real model
 * (the largest vocabularies are ~256k, positions ~1M), and it keeps a hostile or corrupt config from making
 * the loader build billions of tensor specs before any weight is read.
 */
export const MAX_CONFIG_INT = 1 << 22;
/** Layers per tower: real models have tens; each layer is ~16 tensors to check. */
export const MAX_LAYERS = 1024;

/** Positive integer at `obj[key]`, HF default when absent/null, at most MAX_CONFIG_INT. */
function int(obj: Json, key: string, where: string, dflt?: number, min = 1): number {
  const v = obj[key] ?? dflt;
  if (v === undefined) fail(`${where}.${key} is missing`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_CONFIG_INT) {
    fail(`${where}.${key} must be an integer from ${min} to ${MAX_CONFIG_INT}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(obj: Json, key: string, where: string, dflt: number): number {
  const v = obj[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${where}.${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(obj: Json, key: string, where: string, dflt: boolean): boolean {
  const v = obj[key] ?? dflt;
  if (typeof v !== 'boolean') fail(`${where}.${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function optId(obj: Json, key: string, where: string, dflt: number | null): number | null {
  const v = key in obj ? obj[key] : dflt;
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(`${where}.${key} must be a token id, got ${JSON.stringify(v)}`);
  return v;
}

function parseVision(vc: Json): Idefics3VisionConfig {
  const w = 'vision_config';
  // Defaults: Idefics3VisionConfig.__init__.
  const hiddenSize = int(vc, 'hidden_size', w, 1152);
  const intermediateSize = int(vc, 'intermediate_size', w, 3072);
  const numHiddenLayers = int(vc, 'num_hidden_layers', w, 12);
  if (numHiddenLayers > MAX_LAYERS) fail(`${w}.num_hidden_layers ${numHiddenLayers} exceeds ${MAX_LAYERS}`);
  const numAttentionHeads = int(vc, 'num_attention_heads', w, 16);
  const numChannels = int(vc, 'num_channels', w, 3);
  const imageSize = int(vc, 'image_size', w, 224);
  const patchSize = int(vc, 'patch_size', w, 32);
  const hiddenAct = vc.hidden_act ?? 'gelu_pytorch_tanh';
  const layerNormEps = num(vc, 'layer_norm_eps', w, 1e-6);
  if (hiddenAct !== 'gelu_pytorch_tanh') fail(`${w}.hidden_act ${JSON.stringify(hiddenAct)} is not supported (only gelu_pytorch_tanh)`);
  // Idefics3VisionAttention raises on this.
  if (hiddenSize % numAttentionHeads !== 0) fail(`${w}.hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  if (patchSize > imageSize) fail(`${w}.patch_size ${patchSize} exceeds image_size ${imageSize}`);
  // Conv2d(k = stride = p, "valid"): image_size // patch_size patches a side (transformers' num_patches_per_side);
  // the last image_size % p pixel rows and columns are never read (SigLIP-so400m: 384 px, p 14 → 27, 6 px unread).
  const patchesPerSide = Math.floor(imageSize / patchSize);
  return {
    hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, headDim: hiddenSize / numAttentionHeads,
    numChannels, imageSize, patchSize, patchesPerSide, numPatches: patchesPerSide * patchesPerSide,
    hiddenAct, layerNormEps,
  };
}

function ropeTheta(tc: Json, w: string, maxPositions: number): number {
  // transformers ≤ 4.5x: `rope_theta` + `rope_scaling`; v5: `rope_parameters: {rope_type, rope_theta}` (rope-scaling.ts).
  const rope = parseRope(tc, w, maxPositions);
  if (rope.scaling.type !== 'default') {
    fail(`${w} rope type ${JSON.stringify(rope.scaling.type)} is not supported for Idefics3 (no checkpoint of this family uses RoPE scaling; only default RoPE)`);
  }
  return rope.theta;
}

/** Granite's multipliers (GraniteConfig defaults 1.0 each; positive finite numbers). */
function graniteMultipliers(tc: Json, w: string): Pick<Idefics3TextConfig, 'attentionScale' | 'embeddingMultiplier' | 'residualMultiplier' | 'logitsScaling'> {
  return {
    attentionScale: num(tc, 'attention_multiplier', w, 1),
    embeddingMultiplier: num(tc, 'embedding_multiplier', w, 1),
    residualMultiplier: num(tc, 'residual_multiplier', w, 1),
    logitsScaling: num(tc, 'logits_scaling', w, 1),
  };
}

const GRANITE_ONLY = ['attention_multiplier', 'embedding_multiplier', 'residual_multiplier', 'logits_scaling'];

function parseText(tc: Json): Idefics3TextConfig {
  const w = 'text_config';
  const modelType = tc.model_type ?? 'llama'; // Idefics3Config fills "llama" when absent
  if (modelType !== 'llama' && modelType !== 'granite') fail(`${w}.model_type ${JSON.stringify(modelType)} is not supported (llama or granite)`);
  // LlamaModel ignores these keys: a llama config carrying them means a different model than the one it would build.
  if (modelType === 'llama') for (const k of GRANITE_ONLY) if (tc[k] !== undefined && tc[k] !== null) fail(`${w}.${k} is a Granite key, but model_type is "llama"`);
  // Defaults: LlamaConfig.__init__.
  const vocabSize = int(tc, 'vocab_size', w, 32000);
  const hiddenSize = int(tc, 'hidden_size', w, 4096);
  const intermediateSize = int(tc, 'intermediate_size', w, 11008);
  const numHiddenLayers = int(tc, 'num_hidden_layers', w, 32);
  if (numHiddenLayers > MAX_LAYERS) fail(`${w}.num_hidden_layers ${numHiddenLayers} exceeds ${MAX_LAYERS}`);
  const numAttentionHeads = int(tc, 'num_attention_heads', w, 32);
  const numKeyValueHeads = int(tc, 'num_key_value_heads', w, numAttentionHeads);
  const hiddenAct = tc.hidden_act ?? 'silu';
  const rmsNormEps = num(tc, 'rms_norm_eps', w, 1e-6);
  const maxPositionEmbeddings = int(tc, 'max_position_embeddings', w, 2048);
  if (hiddenAct !== 'silu') fail(`${w}.hidden_act ${JSON.stringify(hiddenAct)} is not supported (only silu)`);
  if (bool(tc, 'attention_bias', w, false)) fail(`${w}.attention_bias true is not supported`);
  if (bool(tc, 'mlp_bias', w, false)) fail(`${w}.mlp_bias true is not supported`);
  const pretrainingTp = tc.pretraining_tp ?? 1;
  if (pretrainingTp !== 1) fail(`${w}.pretraining_tp ${JSON.stringify(pretrainingTp)} is not supported`);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(`${w}.num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  }
  let headDim: number;
  if (tc.head_dim === undefined || tc.head_dim === null) {
    if (hiddenSize % numAttentionHeads !== 0) fail(`${w}.hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads} and head_dim is not given`);
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = int(tc, 'head_dim', w);
  }
  if (headDim % 2 !== 0) fail(`${w} head_dim ${headDim} must be even for RoPE`);
  const eos = 'eos_token_id' in tc ? tc.eos_token_id : 2;
  const eosList = eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
  for (const e of eosList) if (typeof e !== 'number' || !Number.isInteger(e) || e < 0) fail(`${w}.eos_token_id must be token id(s), got ${JSON.stringify(eos)}`);
  return {
    textModelType: modelType, vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim,
    hiddenAct, rmsNormEps, ropeTheta: ropeTheta(tc, w, maxPositionEmbeddings), maxPositionEmbeddings,
    bosTokenId: optId(tc, 'bos_token_id', w, 1), eosTokenIds: eosList as number[], padTokenId: optId(tc, 'pad_token_id', w, null),
    ...(modelType === 'granite' ? graniteMultipliers(tc, w) : {}),
  };
}

/** Parse and validate a parsed `config.json` object. Throws `WebVLMError('UnsupportedModel')`. */
export function parseIdefics3Config(json: unknown): Idefics3Config {
  if (!isObject(json)) fail('not a JSON object');
  if (json.model_type !== 'idefics3') fail(`model_type ${JSON.stringify(json.model_type)} is not supported (expected "idefics3")`, { modelType: json.model_type });
  if (!isObject(json.vision_config)) fail('vision_config is missing');
  if (!isObject(json.text_config)) fail('text_config is missing');
  const vision = parseVision(json.vision_config);
  const text = parseText(json.text_config);
  const scaleFactor = int(json, 'scale_factor', 'config', 2);
  const imageTokenId = int(json, 'image_token_id', 'config', 128257, 0);
  const tieWordEmbeddings = bool(json, 'tie_word_embeddings', 'config', false);
  // pixel_shuffle views [h, w, D] as [h, w/s, D·s]: the patch grid must split evenly.
  if (vision.patchesPerSide % scaleFactor !== 0) {
    fail(`patches per side ${vision.patchesPerSide} (image_size/patch_size) is not a multiple of scale_factor ${scaleFactor}`);
  }
  if (imageTokenId >= text.vocabSize) fail(`image_token_id ${imageTokenId} is outside text_config.vocab_size ${text.vocabSize}`);
  const dtype = json.torch_dtype ?? json.dtype ?? null;
  const perSide = vision.patchesPerSide / scaleFactor;
  return {
    modelType: 'idefics3', imageTokenId, scaleFactor, tieWordEmbeddings,
    dtype: typeof dtype === 'string' ? dtype : null,
    vision, text,
    imageSeqLen: perSide * perSide,
    connectorInputSize: vision.hiddenSize * scaleFactor * scaleFactor,
  };
}
