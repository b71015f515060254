/**
 * Random-weight InternVL checkpoints at real shapes, in either layout, with the exact tensor names the family's plan
 * (src/models/internvl/plan.ts) expects, all bf16 as the hub checkpoints are (`torch_dtype: bfloat16`):
 *   node --import ./tests/node/register.mjs models/make-internvl.ts --size test|internvl3-1b|internvl2.5-1b --layout original|native --out DIR [--seed N] [--tokenizer DIR]
 *
 * Sizes: 'internvl3-1b' / 'internvl2.5-1b' are the real models' configs (written from the InternVL3-1B module
 * printout quoted in shared/models/InternVL3-2B/README.md — no genuine config.json was available — and, for the
 * native layout, renamed the way transformers' convert_internvl_weights_to_hf.py does); 'test' is a CI-sized model
 * (56-px tiles of 4×4 patches → 4 tokens per tile, 2+2 layers, width 32) that keeps the real vocabulary (151674) so
 * the real tokenizer's ids are valid. Values are the same bf16 draws as models/make-checkpoint.ts (per tensor name).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { planSafetensors, tensorPieces, writeSafetensors } from './make-checkpoint.ts';
import { parseInternVLConfig } from '../src/models/internvl/config.ts';
import { internvlTensorSpecs } from '../src/models/internvl/plan.ts';
import type { TensorSpec } from '../src/models/plan.ts';

type Json = Record<string, unknown>;
export type InternVLSize = 'test' | 'internvl3-1b' | 'internvl2.5-1b';
export type InternVLLayoutName = 'original' | 'native';

interface Shape {
  vision: { hidden: number; layers: number; heads: number; inter: number; image: number; patch: number };
  text: { hidden: number; layers: number; heads: number; kv: number; inter: number; vocab: number; maxPos: number; tie: boolean; rope: Json | null; eos: number };
}

const SHAPES: Record<InternVLSize, Shape> = {
  // InternVL3-1B: InternViT-300M-448px-V2_5 + Qwen2.5-0.5B (vocab 151674 = 151643 + 31 added), untied head, dynamic RoPE ×2.
  'internvl3-1b': {
    vision: { hidden: 1024, layers: 24, heads: 16, inter: 4096, image: 448, patch: 14 },
    text: { hidden: 896, layers: 24, heads: 14, kv: 2, inter: 4864, vocab: 151674, maxPos: 32768, tie: false, rope: { type: 'dynamic', factor: 2.0 }, eos: 151645 },
  },
  // InternVL2.5-1B: the same tower and Qwen2.5-0.5B-Instruct, default RoPE (its llm_config tie flag could not be checked: untied here).
  'internvl2.5-1b': {
    vision: { hidden: 1024, layers: 24, heads: 16, inter: 4096, image: 448, patch: 14 },
    text: { hidden: 896, layers: 24, heads: 14, kv: 2, inter: 4864, vocab: 151674, maxPos: 32768, tie: false, rope: null, eos: 151645 },
  },
  test: {
    vision: { hidden: 32, layers: 2, heads: 2, inter: 64, image: 56, patch: 14 },
    text: { hidden: 32, layers: 2, heads: 4, kv: 2, inter: 64, vocab: 151674, maxPos: 4096, tie: false, rope: null, eos: 151645 },
  },
};

/** config.json of a size in a layout (`tie` overrides the head's tying, for tests of both). */
export function internvlConfigJson(size: InternVLSize, layout: InternVLLayoutName, o: { tie?: boolean; maxTiles?: number } = {}): Json {
  const s = SHAPES[size];
  const t = s.text, v = s.vision;
  const text: Json = {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: t.hidden, num_hidden_layers: t.layers, num_attention_heads: t.heads,
    num_key_value_heads: t.kv, intermediate_size: t.inter, vocab_size: t.vocab, max_position_embeddings: t.maxPos, rms_norm_eps: 1e-6,
    rope_theta: 1000000.0, rope_scaling: t.rope, hidden_act: 'silu', tie_word_embeddings: o.tie ?? t.tie, use_sliding_window: false,
    bos_token_id: 151643, eos_token_id: t.eos, torch_dtype: 'bfloat16',
  };
  if (layout === 'original') {
    return {
      architectures: ['InternVLChatModel'], model_type: 'internvl_chat', downsample_ratio: 0.5, dynamic_image_size: true,
      force_image_size: v.image, max_dynamic_patch: o.maxTiles ?? 12, min_dynamic_patch: 1, ps_version: 'v2', select_layer: -1,
      template: 'internvl2_5', use_thumbnail: true, pad2square: false, torch_dtype: 'bfloat16',
      llm_config: text,
      vision_config: {
        architectures: ['InternVisionModel'], model_type: 'intern_vit_6b', hidden_size: v.hidden, num_hidden_layers: v.layers,
        num_attention_heads: v.heads, intermediate_size: v.inter, image_size: v.image, patch_size: v.patch, num_channels: 3,
        qkv_bias: true, qk_normalization: false, norm_type: 'layer_norm', layer_norm_eps: 1e-6, hidden_act: 'gelu', initializer_factor: 0.1,
        torch_dtype: 'bfloat16',
      },
    };
  }
  const P = v.image / v.patch;
  return {
    architectures: ['InternVLForConditionalGeneration'], model_type: 'internvl', downsample_ratio: 0.5, image_token_id: 151667,
    image_seq_length: (P / 2) ** 2, projector_hidden_act: 'gelu', vision_feature_layer: -1, vision_feature_select_strategy: 'default',
    torch_dtype: 'bfloat16', text_config: text,
    vision_config: {
      model_type: 'internvl_vision', hidden_size: v.hidden, num_hidden_layers: v.layers, num_attention_heads: v.heads, intermediate_size: v.inter,
      image_size: [v.image, v.image], patch_size: [v.patch, v.patch], num_channels: 3, attention_bias: true, use_qk_norm: false,
      norm_type: 'layer_norm', layer_norm_eps: 1e-6, hidden_act: 'gelu', use_mean_pooling: true, use_absolute_position_embeddings: true,
      layer_scale_init_value: 0.1,
    },
  };
}

/** preprocessor_config.json (native: the converted repos' GotOcr2 processor, at the size's tile). */
export function internvlPreprocessorJson(size: InternVLSize, layout: InternVLLayoutName, maxTiles = 12): Json {
  const tile = SHAPES[size].vision.image;
  if (layout === 'original') return { crop_size: tile, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor', image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], resample: 3, size: tile };
  return {
    image_processor_type: 'GotOcr2ImageProcessor', crop_to_patches: false, min_patches: 1, max_patches: maxTiles, do_resize: true, size: { height: tile, width: tile },
    resample: 3, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], do_convert_rgb: true,
  };
}

const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * tokenizer.json for a Qwen2 tokenizer folder that has only the slow files (vocab.json, merges.txt,
 * tokenizer_config.json's added_tokens_decoder): transformers' `Qwen2Converter` (convert_slow_tokenizer.py) —
 * NFC, Split(the Qwen2 regex, isolated), ByteLevel(use_regex = false), BPE without unk, ByteLevel decoder.
 */
export function qwen2TokenizerJson(dir: string): Json {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const vocab = JSON.parse(read('vocab.json')) as Record<string, number>;
  const merges = read('merges.txt').split('\n').filter((l) => l && !l.startsWith('#version')).map((l) => l.split(' '));
  const config = JSON.parse(read('tokenizer_config.json')) as Json;
  const table = config.added_tokens_decoder as Record<string, { content: string; special: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; single_word: boolean }>;
  const added = Object.entries(table).map(([id, t]) => ({ id: Number(id), content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_PATTERN }, behavior: 'Isolated', invert: false }, byteLevel] },
    post_processor: byteLevel, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

export const internvlSpecs = (config: Json): TensorSpec[] => internvlTensorSpecs(parseInternVLConfig(config));

/** The checkpoint's tensors as f32 values (the bf16 draws widened), without writing a file. */
export function* internvlTensors(config: Json, seed: number): Generator<{ name: string; shape: number[]; values: Float32Array }> {
  for (const spec of internvlSpecs(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    const bits = new Uint32Array(values.buffer);
    let o = 0;
    for (const piece of tensorPieces(spec, seed)) {
      const h = new Uint16Array(piece.buffer, piece.byteOffset, piece.length >>> 1);
      for (let i = 0; i < h.length; i++) bits[o++] = h[i] << 16;
    }
    yield { name: spec.name, shape: spec.shape, values };
  }
}

/** Writes config.json, preprocessor_config.json, model.safetensors and, with `tokenizerDir` (a Qwen2 folder with the
 * slow tokenizer files, e.g. shared/models/InternVL3-2B), its tokenizer files plus a derived tokenizer.json. */
export async function writeInternVLCheckpoint(opts: { size: InternVLSize; layout: InternVLLayoutName; out: string; seed?: number; tokenizerDir?: string; tie?: boolean }): Promise<{ tensors: number; bytes: number }> {
  await mkdir(opts.out, { recursive: true });
  const config = internvlConfigJson(opts.size, opts.layout, { tie: opts.tie });
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  if (opts.tokenizerDir) {
    for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'added_tokens.json', 'special_tokens_map.json']) await writeFile(join(opts.out, f), await readFile(join(opts.tokenizerDir, f)));
    await writeFile(join(opts.out, 'tokenizer.json'), JSON.stringify(qwen2TokenizerJson(opts.tokenizerDir)));
  }
  await writeFile(join(opts.out, 'config.json'), json(config));
  await writeFile(join(opts.out, 'preprocessor_config.json'), json(internvlPreprocessorJson(opts.size, opts.layout)));
  const specs = internvlSpecs(config);
  const file = planSafetensors('model.safetensors', specs);
  await writeSafetensors(join(opts.out, file.name), file, opts.seed ?? 0);
  return { tensors: specs.length, bytes: file.bytes };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(`--${k}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const size = (arg('size') ?? 'test') as InternVLSize, layout = (arg('layout') ?? 'original') as InternVLLayoutName, out = arg('out');
  if (!out || !(size in SHAPES) || (layout !== 'original' && layout !== 'native')) {
    console.error('usage: make-internvl.ts --size test|internvl3-1b|internvl2.5-1b --layout original|native --out DIR [--seed N]');
    process.exit(2);
  }
  const r = await writeInternVLCheckpoint({ size, layout, out, seed: Number(arg('seed') ?? 0), tokenizerDir: arg('tokenizer') });
  console.log(`${out}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB`);
}
