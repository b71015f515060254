/**
 * Typed parser/validator for an InternVL `config.json`, in both layouts:
 *
 * - 'original' (`InternVLChatModel`, model_type "internvl_chat"; OpenGVLab/InternVL `internvl_chat/internvl/model/
 *   internvl_chat/configuration_internvl_chat.py` + `configuration_intern_vit.py`): top-level `vision_config`
 *   (InternVisionConfig), `llm_config` (here Qwen2), `downsample_ratio`, `ps_version`, `select_layer`,
 *   `force_image_size`, `template`, `min/max_dynamic_patch`, `use_thumbnail`, `dynamic_image_size`.
 * - 'native' (`InternVLForConditionalGeneration`, model_type "internvl"; transformers `models/internvl/
 *   configuration_internvl.py`, the `-hf` repos): `vision_config` (InternVLVisionConfig: `attention_bias`,
 *   `use_qk_norm`, `use_mean_pooling`, `layer_scale_init_value`), `text_config` (Qwen2Config), `image_token_id`,
 *   `image_seq_length`, `downsample_ratio`, `projector_hidden_act`, `vision_feature_layer`,
 *   `vision_feature_select_strategy`. The tiling numbers live in its preprocessor_config.json (processor.ts).
 *
 * Defaults are each layout's own. What is refused (`UnsupportedModel`) is what these checkpoints (InternVL3-1B,
 * InternVL2.5-1B and their -hf ports) do not use and is not implemented: a Llama/InternLM2 decoder, RMSNorm or
 * QK-norm in the ViT (InternViT-6B), ps_version v1, a feature layer other than the last, a tile size other than the
 * ViT's image_size (the position table would have to be interpolated), RoPE types other than default / dynamic.
 */
import { WebVLMError } from '../../errors.ts';
import type { DecoderConfig } from '../llama.ts';
import type { VitConfig } from '../siglip.ts';
import { parseRope, type RopeScaling } from '../rope-scaling.ts';

export type InternVLLayout = 'original' | 'native';

export interface InternVisionConfig extends VitConfig {
  numHiddenLayers: number;
  /** Original `qkv_bias` / native `attention_bias`. */
  qkvBias: boolean;
  patchesPerSide: number;
  hiddenAct: 'gelu';
  classToken: true;
  layerScale: true;
  /** Native `use_mean_pooling: false` adds a final LayerNorm (`vision_tower.layernorm`); the original has none. */
  postNorm: boolean;
}

export interface InternVLTextConfig extends DecoderConfig {
  vocabSize: number;
  maxPositionEmbeddings: number;
  eosTokenIds: number[];
  tieWordEmbeddings: boolean;
  ropeScaling: RopeScaling;
}

export interface InternVLConfig {
  modelType: 'internvl_chat' | 'internvl';
  layout: InternVLLayout;
  imageTokenId: number;
  /** 1 / downsample_ratio (2 for 0.5). */
  scaleFactor: number;
  /** Visual tokens per 448-px tile: (patchesPerSide / scaleFactor)². */
  imageSeqLen: number;
  /** mlp1 / multi_modal_projector input width: D · scaleFactor². */
  connectorInputSize: number;
  /** Original layout only (native: from preprocessor_config.json). */
  tiling?: { minTiles: number; maxTiles: number; useThumbnail: boolean; dynamic: boolean };
  dtype: string | null;
  vision: InternVisionConfig;
  text: InternVLTextConfig;
}

type Json = Record<string, unknown>;

const MAX_INT = 1 << 22;
const MAX_LAYERS = 1024;

function fail(message: string, details?: Record<string, unknown>): never {
  throw new WebVLMError('UnsupportedModel', `config.json: ${message}`, { details });
}
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function int(o: Json, key: string, where: string, dflt?: number, min = 1): number {
  const v = o[key] ?? dflt;
  if (v === undefined) fail(`${where}.${key} is missing`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_INT) fail(`${where}.${key} must be an integer from ${min} to ${MAX_INT}, got ${JSON.stringify(v)}`);
  return v;
}
function num(o: Json, key: string, where: string, dflt: number): number {
  const v = o[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${where}.${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}
function bool(o: Json, key: string, where: string, dflt: boolean): boolean {
  const v = o[key] ?? dflt;
  if (typeof v !== 'boolean') fail(`${where}.${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}
/** An int or a square [n, n] pair (native image_size / patch_size may be lists). */
function side(o: Json, key: string, where: string, dflt: number): number {
  const v = o[key] ?? dflt;
  if (Array.isArray(v)) {
    if (v.length !== 2 || v[0] !== v[1]) fail(`${where}.${key} ${JSON.stringify(v)}: only square sizes are supported`);
    return int({ [key]: v[0] }, key, where);
  }
  return int({ [key]: v }, key, where);
}

function parseVision(vc: Json, layout: InternVLLayout): InternVisionConfig {
  const w = 'vision_config';
  const hiddenSize = int(vc, 'hidden_size', w, layout === 'original' ? 3200 : 1024);
  const intermediateSize = int(vc, 'intermediate_size', w, layout === 'original' ? 12800 : 4096);
  const numHiddenLayers = int(vc, 'num_hidden_layers', w, layout === 'original' ? 48 : 24);
  if (numHiddenLayers > MAX_LAYERS) fail(`${w}.num_hidden_layers ${numHiddenLayers} exceeds ${MAX_LAYERS}`);
  const numAttentionHeads = int(vc, 'num_attention_heads', w, layout === 'original' ? 25 : 16);
  const numChannels = int(vc, 'num_channels', w, 3);
  const imageSize = side(vc, 'image_size', w, layout === 'original' ? 224 : 448);
  const patchSize = side(vc, 'patch_size', w, 14);
  const layerNormEps = num(vc, 'layer_norm_eps', w, 1e-6);
  const hiddenAct = vc.hidden_act ?? 'gelu';
  if (hiddenAct !== 'gelu') fail(`${w}.hidden_act ${JSON.stringify(hiddenAct)} is not supported (only gelu, exact)`);
  const normType = vc.norm_type ?? (layout === 'original' ? 'rms_norm' : 'layer_norm');
  if (normType !== 'layer_norm') fail(`${w}.norm_type ${JSON.stringify(normType)} is not supported (only layer_norm: InternViT-300M)`);
  // InternVisionConfig defaults to InternViT-6B (qk_normalization true, rms_norm); InternVLVisionConfig to the 300M.
  const qkNorm = layout === 'original' ? bool(vc, 'qk_normalization', w, true) : bool(vc, 'use_qk_norm', w, false);
  if (qkNorm) fail(`${w}: QK normalization (InternViT-6B) is not supported`);
  const qkvBias = layout === 'original' ? bool(vc, 'qkv_bias', w, false) : bool(vc, 'attention_bias', w, false);
  if (layout === 'native') {
    if (bool(vc, 'use_mask_token', w, false)) fail(`${w}.use_mask_token true is not supported`);
    if (!bool(vc, 'use_absolute_position_embeddings', w, true)) fail(`${w}.use_absolute_position_embeddings false is not supported`);
  }
  const postNorm = layout === 'native' ? !bool(vc, 'use_mean_pooling', w, true) : false;
  if (hiddenSize % numAttentionHeads !== 0) fail(`${w}.hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  if (imageSize % patchSize !== 0) fail(`${w}.image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const patchesPerSide = imageSize / patchSize;
  return {
    hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, headDim: hiddenSize / numAttentionHeads, numChannels,
    imageSize, patchSize, patchesPerSide, numPatches: patchesPerSide * patchesPerSide, layerNormEps, hiddenAct: 'gelu',
    qkvBias, classToken: true, layerScale: true, postNorm,
  };
}

function parseText(tc: Json, where: string, tieDefault: boolean): InternVLTextConfig {
  const w = where;
  const modelType = tc.model_type ?? 'qwen2';
  if (modelType !== 'qwen2') fail(`${w}.model_type ${JSON.stringify(modelType)} is not supported (only qwen2: InternVL3-1B/2B, InternVL2.5-1B/4B)`);
  // Defaults: Qwen2Config.__init__.
  const vocabSize = int(tc, 'vocab_size', w, 151936);
  const hiddenSize = int(tc, 'hidden_size', w, 4096);
  const intermediateSize = int(tc, 'intermediate_size', w, 22016);
  const numHiddenLayers = int(tc, 'num_hidden_layers', w, 32);
  if (numHiddenLayers > MAX_LAYERS) fail(`${w}.num_hidden_layers ${numHiddenLayers} exceeds ${MAX_LAYERS}`);
  const numAttentionHeads = int(tc, 'num_attention_heads', w, 32);
  const numKeyValueHeads = int(tc, 'num_key_value_heads', w, 32);
  const maxPositionEmbeddings = int(tc, 'max_position_embeddings', w, 32768);
  const rmsNormEps = num(tc, 'rms_norm_eps', w, 1e-6);
  const hiddenAct = tc.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') fail(`${w}.hidden_act ${JSON.stringify(hiddenAct)} is not supported (only silu)`);
  // Qwen2 attends over a sliding window only with use_sliding_window (false in these checkpoints).
  if (bool(tc, 'use_sliding_window', w, false)) fail(`${w}.use_sliding_window true is not supported`);
  if (numAttentionHeads % numKeyValueHeads !== 0) fail(`${w}.num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  if (hiddenSize % numAttentionHeads !== 0) fail(`${w}.hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  // Qwen2Attention: head_dim = hidden_size // num_heads (a head_dim key, where a newer transformers writes one, must agree).
  const headDim = hiddenSize / numAttentionHeads;
  if (tc.head_dim !== undefined && tc.head_dim !== null && tc.head_dim !== headDim) fail(`${w}.head_dim ${JSON.stringify(tc.head_dim)} differs from hidden_size / num_attention_heads ${headDim}`);
  if (headDim % 2 !== 0) fail(`${w} head_dim ${headDim} must be even for RoPE`);
  if (!('rope_theta' in tc) && !('rope_parameters' in tc)) tc = { ...tc, rope_theta: 10000 }; // Qwen2Config default
  const rope = parseRope(tc, w, maxPositionEmbeddings);
  if (rope.scaling.type === 'linear') fail(`${w} rope type "linear" is not supported for InternVL (default or dynamic only)`);
  const eos = tc.eos_token_id ?? null;
  const eosList = eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  for (const e of eosList) if (typeof e !== 'number' || !Number.isInteger(e) || e < 0) fail(`${w}.eos_token_id must be token id(s), got ${JSON.stringify(eos)}`);
  return {
    vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, numKeyValueHeads, headDim, rmsNormEps,
    ropeTheta: rope.theta, ropeScaling: rope.scaling, maxPositionEmbeddings, eosTokenIds: eosList as number[],
    tieWordEmbeddings: bool(tc, 'tie_word_embeddings', w, tieDefault),
  };
}

function scaleOf(json: Json): number {
  const r = json.downsample_ratio ?? 0.5;
  if (typeof r !== 'number' || !(r > 0 && r <= 1) || !Number.isInteger(1 / r)) fail(`downsample_ratio ${JSON.stringify(r)} must be 1/n`);
  return 1 / r;
}

/** Parse and validate an InternVL config.json (either layout). Throws `WebVLMError('UnsupportedModel')`. */
export function parseInternVLConfig(json: unknown): InternVLConfig {
  if (!isObject(json)) fail('not a JSON object');
  const type = json.model_type;
  if (type !== 'internvl_chat' && type !== 'internvl') fail(`model_type ${JSON.stringify(type)} is not supported (expected "internvl_chat" or "internvl")`, { modelType: type });
  const layout: InternVLLayout = type === 'internvl_chat' ? 'original' : 'native';
  if (!isObject(json.vision_config)) fail('vision_config is missing');
  const textKey = layout === 'original' ? 'llm_config' : 'text_config';
  if (!isObject(json[textKey])) fail(`${textKey} is missing`);
  const vision = parseVision(json.vision_config, layout);
  const scaleFactor = scaleOf(json);
  if (vision.patchesPerSide % scaleFactor !== 0) fail(`patches per side ${vision.patchesPerSide} is not a multiple of 1/downsample_ratio ${scaleFactor}`);
  const imageSeqLen = (vision.patchesPerSide / scaleFactor) ** 2;
  let text: InternVLTextConfig, imageTokenId: number, tiling: InternVLConfig['tiling'];
  if (layout === 'original') {
    // InternVLChatModel builds Qwen2ForCausalLM(llm_config): its tie_word_embeddings (Qwen2Config default false) decides.
    text = parseText(json.llm_config as Json, 'llm_config', false);
    const arch = (json.llm_config as Json).architectures;
    if (Array.isArray(arch) && arch[0] !== 'Qwen2ForCausalLM') fail(`llm_config.architectures ${JSON.stringify(arch)} is not supported (Qwen2ForCausalLM)`);
    const psVersion = json.ps_version ?? 'v1';
    // v1 transposes the shuffled grid (InternVL warns it is the legacy order); every InternVL2.5/3 checkpoint is v2.
    if (psVersion !== 'v2') fail(`ps_version ${JSON.stringify(psVersion)} is not supported (only v2)`);
    const selectLayer = json.select_layer ?? -1;
    if (selectLayer !== -1) fail(`select_layer ${JSON.stringify(selectLayer)} is not supported (only -1, the last layer)`);
    const force = json.force_image_size ?? null;
    // num_image_token uses force_image_size; a size other than the ViT's would interpolate its position table.
    if (force !== null && force !== vision.imageSize) fail(`force_image_size ${JSON.stringify(force)} differs from vision_config.image_size ${vision.imageSize} (position-table interpolation is not implemented)`);
    const template = json.template ?? null;
    if (template !== 'internvl2_5') fail(`template ${JSON.stringify(template)} is not supported (only "internvl2_5": InternVL2.5 / InternVL3)`);
    if (json.pad2square === true) fail('pad2square true is not supported');
    const minTiles = int(json, 'min_dynamic_patch', 'config', 1);
    const maxTiles = int(json, 'max_dynamic_patch', 'config', 6);
    if (minTiles > maxTiles) fail(`min_dynamic_patch ${minTiles} exceeds max_dynamic_patch ${maxTiles}`);
    if (maxTiles > 64) fail(`max_dynamic_patch ${maxTiles} exceeds 64`);
    tiling = { minTiles, maxTiles, useThumbnail: bool(json, 'use_thumbnail', 'config', false), dynamic: bool(json, 'dynamic_image_size', 'config', false) };
    // InternVLChatModel reads `<IMG_CONTEXT>`'s id from the tokenizer at chat time; for a Qwen2 LLM it is 151667 (as
    // transformers' convert_internvl_weights_to_hf.py writes it). checkConsistency compares it with the tokenizer.
    imageTokenId = 151667;
  } else {
    // tie_weights reads the text config's tie_word_embeddings (Qwen2Config default false), not the top-level key.
    text = parseText(json.text_config as Json, 'text_config', false);
    imageTokenId = int(json, 'image_token_id', 'config', 151667, 0);
    const seq = int(json, 'image_seq_length', 'config', 256);
    if (seq !== imageSeqLen) fail(`image_seq_length ${seq} does not match the vision tower (${vision.numPatches} patches / ${scaleFactor}²)`);
    const act = json.projector_hidden_act ?? 'gelu';
    if (act !== 'gelu') fail(`projector_hidden_act ${JSON.stringify(act)} is not supported (only gelu)`);
    const layer = json.vision_feature_layer ?? -1;
    if (layer !== -1) fail(`vision_feature_layer ${JSON.stringify(layer)} is not supported (only -1)`);
    const strategy = json.vision_feature_select_strategy ?? 'default';
    if (strategy !== 'default') fail(`vision_feature_select_strategy ${JSON.stringify(strategy)} is not supported (only "default": the class token dropped)`);
  }
  if (imageTokenId >= text.vocabSize) fail(`image token id ${imageTokenId} is outside the vocabulary (${text.vocabSize})`);
  const dtype = json.torch_dtype ?? json.dtype ?? null;
  return {
    modelType: type, layout, imageTokenId, scaleFactor, imageSeqLen, connectorInputSize: vision.hiddenSize * scaleFactor * scaleFactor,
    tiling, dtype: typeof dtype === 'string' ? dtype : null, vision, text,
  };
}
