/**
 * Deterministic random-weight SmolVLM2 checkpoints (transformers `SmolVLMForConditionalGeneration`, model_type
 * "smolvlm") in the Hugging Face layout, for the SmolVLM family's tests and benchmarks without the real weights.
 *
 *   node --import ./tests/node/register.mjs models/make-smolvlm2.ts --variant test|256m|500m|2.2b --out DIR [--seed N] [--shard-bytes N]
 *
 * Files: config.json, preprocessor_config.json, processor_config.json and generation_config.json from
 * models/smolvlm2/<repo>/ (built from the published shapes, not genuine copies: see models/smolvlm2/README.md);
 * tokenizer.json, vocab.json, merges.txt, added_tokens.json, special_tokens_map.json and chat_template.json are
 * SmolVLM-256M-Instruct's real files (SmolVLM2 has the same tokenizer: the SmolLM2 BPE with the same 128 added tokens at
 * the same ids; the same chat template), tokenizer_config.json is SmolVLM-1's with SmolVLM2's processor class and token
 * attributes. Weights: the tensor names and shapes of `Idefics3`'s plan (SmolVLM saves the same tensors), in the
 * config's `torch_dtype` (float32 → F32, as the transcribed SmolVLM2-500M config says), values as in make-checkpoint.ts (bf16-valued
 * draws, so F32 holds them exactly and the f64 reference reads the same numbers).
 *
 * Variants: `256m` / `500m` / `2.2b`: the real shapes (471 / 489 / 657 tensors; 256,484,928 / 507,482,304 /
 * 2,246,784,880 parameters, 4 bytes each). `test`: the 2.2B's
 * structure at small sizes for CI — patch 14 (the non-vec4 patch embedding), vision head_dim 72 (SigLIP-so400m's), scale
 * factor 3, 176-px tiles that 14 does not divide (12×12 patches, the last 8 px unread, as the 2.2B's 384 / 14 → 27 leaves
 * 6; 16 tokens a frame), longest edge 4 tiles, MHA text 2/2 heads of 64, the real 49,280-token vocabulary: 54 MB of F32.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseSmolVLMConfig } from '../src/models/smolvlm/config.ts';
import { idefics3TensorSpecs } from '../src/models/idefics3/plan.ts';
import type { TensorSpec } from '../src/models/plan.ts';
import { REAL_MODEL_DIR, writeWeights, type WeightDtype, type WriteResult } from './make-checkpoint.ts';

export type SmolVLM2Variant = 'test' | '256m' | '500m' | '2.2b';

export const SMOLVLM2_REPOS: Record<Exclude<SmolVLM2Variant, 'test'>, string> = {
  '256m': 'SmolVLM2-256M-Video-Instruct',
  '500m': 'SmolVLM2-500M-Video-Instruct',
  '2.2b': 'SmolVLM2-2.2B-Instruct',
};

/** The built files' folder. */
export const SMOLVLM2_DIR = fileURLToPath(new URL('./smolvlm2/', import.meta.url));

/** SmolVLM-1's real tokenizer files, copied verbatim. */
const COPIED = ['tokenizer.json', 'vocab.json', 'merges.txt', 'added_tokens.json', 'special_tokens_map.json', 'chat_template.json'];

// Configs are edited by key path; `any` keeps that terse in a generator script.
type Json = Record<string, any>;

export interface SmolVLM2Files {
  config: Json;
  preprocessorConfig: Json;
  processorConfig: Json;
  generationConfig: Json;
  tokenizerConfig: Json;
}

const readJson = async (dir: string, name: string): Promise<Json> => JSON.parse(await readFile(join(dir, name), 'utf8')) as Json;

/**
 * SmolVLM2's tokenizer_config.json: SmolVLM-1's (the same tokenizer), with the SmolVLM processor class and the token
 * attributes processing_smolvlm.py reads (`extra_special_tokens`, which transformers turns into tokenizer attributes).
 */
export function smolvlm2TokenizerConfig(smolvlm1: Json): Json {
  const tokens = { end_of_utterance_token: '<end_of_utterance>', fake_image_token: '<fake_token_around_image>', global_image_token: '<global-img>', image_token: '<image>' };
  return { ...smolvlm1, ...tokens, extra_special_tokens: tokens, processor_class: 'SmolVLMProcessor' };
}

/** The small files of a variant (test: the 2.2B's, shrunk). */
export async function smolvlm2Files(variant: SmolVLM2Variant, realDir = REAL_MODEL_DIR): Promise<SmolVLM2Files> {
  const dir = join(SMOLVLM2_DIR, SMOLVLM2_REPOS[variant === 'test' ? '2.2b' : variant]);
  const files: SmolVLM2Files = {
    config: await readJson(dir, 'config.json'),
    preprocessorConfig: await readJson(dir, 'preprocessor_config.json'),
    processorConfig: await readJson(dir, 'processor_config.json'),
    generationConfig: await readJson(dir, 'generation_config.json'),
    tokenizerConfig: smolvlm2TokenizerConfig(await readJson(realDir, 'tokenizer_config.json')),
  };
  if (variant !== 'test') return files;
  const tile = 176, patch = 14, scale = 3, edge = 4 * tile;
  const { config, preprocessorConfig, processorConfig } = files;
  Object.assign(config.vision_config, {
    hidden_size: 144, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2,
    image_size: tile, patch_size: patch, max_image_size: { longest_edge: tile }, size: { longest_edge: edge },
  });
  Object.assign(config.text_config, {
    hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 64,
    pixel_shuffle_factor: scale,
  });
  config.scale_factor = scale;
  preprocessorConfig.max_image_size = { longest_edge: tile };
  preprocessorConfig.size = { longest_edge: edge };
  preprocessorConfig.video_sampling.video_size = { longest_edge: tile };
  processorConfig.image_seq_len = (Math.floor(tile / patch) / scale) ** 2;
  return files;
}

export function smolvlm2TensorSpecs(config: Json): TensorSpec[] {
  return idefics3TensorSpecs(parseSmolVLMConfig(config));
}

/** The safetensors dtype of the config's `torch_dtype`. */
export function weightDtype(config: Json): WeightDtype {
  const d = config.torch_dtype ?? config.dtype;
  if (d === 'float32') return 'F32';
  if (d === 'bfloat16') return 'BF16';
  throw new Error(`make-smolvlm2: torch_dtype ${JSON.stringify(d)} is not float32 or bfloat16`);
}

export interface WriteSmolVLM2Options {
  variant: SmolVLM2Variant;
  out: string;
  seed?: number;
  shardBytes?: number;
  realDir?: string;
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

/** Every file of a variant but the weights (what a processor or tokenizer test needs). */
export async function writeSmolVLM2Files(variant: SmolVLM2Variant, out: string, realDir = REAL_MODEL_DIR): Promise<SmolVLM2Files> {
  await mkdir(out, { recursive: true });
  const f = await smolvlm2Files(variant, realDir);
  await writeFile(join(out, 'config.json'), json(f.config));
  await writeFile(join(out, 'preprocessor_config.json'), json(f.preprocessorConfig));
  await writeFile(join(out, 'processor_config.json'), json(f.processorConfig));
  await writeFile(join(out, 'generation_config.json'), json(f.generationConfig));
  await writeFile(join(out, 'tokenizer_config.json'), json(f.tokenizerConfig));
  // Written, not copyFile'd: the originals are read-only and a rerun must be able to overwrite the copies.
  for (const name of COPIED) await writeFile(join(out, name), await readFile(join(realDir, name)));
  return f;
}

export async function writeSmolVLM2Checkpoint(opts: WriteSmolVLM2Options): Promise<WriteResult> {
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  const f = await writeSmolVLM2Files(opts.variant, opts.out, opts.realDir ?? REAL_MODEL_DIR);
  const specs = smolvlm2TensorSpecs(f.config);
  const dtype = weightDtype(f.config);
  return writeWeights(opts.out, specs, { seed, shardBytes: opts.shardBytes, dtype }, t0);
}

function parseArgs(argv: string[]): WriteSmolVLM2Options {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const variant = get('--variant') as SmolVLM2Variant | undefined;
  const out = get('--out');
  if (!variant || !['test', '256m', '500m', '2.2b'].includes(variant) || !out) {
    console.error('usage: make-smolvlm2.ts --variant test|256m|500m|2.2b --out DIR [--seed N] [--shard-bytes N]');
    process.exit(2);
  }
  const seed = get('--seed');
  const shard = get('--shard-bytes');
  return { variant, out, seed: seed ? Number(seed) : 0, shardBytes: shard ? Number(shard) : undefined };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  const r = await writeSmolVLM2Checkpoint(opts);
  for (const f of r.files) console.log(`${join(opts.out, f.name)}: ${f.tensors.length} tensors, ${f.bytes} bytes (header ${f.header.length})`);
  console.log(`${r.tensors} tensors, ${r.weightBytes} bytes in ${(r.ms / 1000).toFixed(2)} s`);
}
