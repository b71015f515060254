/**
 * Deterministic random-weight Granite-Docling-258M checkpoints (ibm-granite/granite-docling-258M:
 * `Idefics3ForConditionalGeneration`, model_type "idefics3": a siglip2-base-patch16-512 tower in Idefics3's layout,
 * pixel shuffle ×4, a 30-layer "Granite 165M" decoder saved as `llama`, tied embeddings, 100,352-token vocabulary)
 * in the Hugging Face layout, for tests and benchmarks without the real weights.
 *
 *   node --import ./tests/node/register.mjs models/make-granite-docling.ts --size test|258m [--text llama|granite] --out DIR [--seed N] [--shard-bytes N]
 *
 * Files: the genuine config.json, preprocessor_config.json, processor_config.json, generation_config.json,
 * tokenizer_config.json, special_tokens_map.json, added_tokens.json, chat_template.jinja, vocab.json and merges.txt
 * of models/granite-docling/ (see its README.md); tokenizer.json is derived from vocab.json + merges.txt + the
 * added tokens as transformers builds the fast tokenizer of a `GPT2Tokenizer` (the hub's own tokenizer.json was not
 * found). Weights: the tensor names and shapes of the Idefics3 plan in BF16 (the checkpoint's dtype), values as in
 * make-checkpoint.ts.
 *
 * `258m`: the real config: 470 tensors, 257,517,120 parameters, a 58,856-byte header, 515,093,104 bytes — the size
 * of the hub's model.safetensors (its LFS pointer is in models/granite-docling/). `test`: the same structure for CI
 * at small sizes: 256-px tiles of the real 16-px patches (16×16), the real pixel shuffle ×4 (16 tokens a frame),
 * longest edge 2 tiles, 2+2 layers of width 128 (head_dim 64, text 2/1 heads), the real vocabulary and special ids,
 * tied embeddings: ~28 MB. `--text granite` makes the decoder a `granite` text config with Granite-3's multipliers
 * (embedding ×12, attention scale 1/64, residual ×0.22, logits_scaling 8), to run the multipliers through the whole
 * family path (no released Idefics3 checkpoint has a `granite` text config).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseIdefics3Config } from '../src/models/idefics3/config.ts';
import { idefics3TensorSpecs } from '../src/models/idefics3/plan.ts';
import { writeWeights, type WriteResult } from './make-checkpoint.ts';

export type GraniteDoclingSize = 'test' | '258m';
export type GraniteDoclingText = 'llama' | 'granite';

/** The genuine files' folder. */
export const GRANITE_DOCLING_DIR = fileURLToPath(new URL('./granite-docling/', import.meta.url));

/** Copied verbatim for every size. */
const COPIED = ['generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.jinja', 'vocab.json', 'merges.txt'];

// Configs are edited by key path; `any` keeps that terse in a generator script.
type Json = Record<string, any>;

const readJson = async (name: string, dir = GRANITE_DOCLING_DIR): Promise<Json> => JSON.parse(await readFile(join(dir, name), 'utf8')) as Json;

/** Granite-3.x's multipliers (granite-3.0-2b/8b configs), for the `granite` text variant. */
export const GRANITE_MULTIPLIERS = { embedding_multiplier: 12.0, attention_multiplier: 0.015625, residual_multiplier: 0.22, logits_scaling: 8.0 };

export async function graniteDoclingConfigs(size: GraniteDoclingSize, text: GraniteDoclingText = 'llama'): Promise<{ config: Json; preprocessorConfig: Json; processorConfig: Json }> {
  const config = await readJson('config.json');
  const preprocessorConfig = await readJson('preprocessor_config.json');
  const processorConfig = await readJson('processor_config.json');
  if (size === 'test') {
    const tile = 256;
    Object.assign(config.vision_config, {
      hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2,
      image_size: tile, max_image_size: { longest_edge: tile }, size: { longest_edge: tile },
    });
    Object.assign(config.text_config, { hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 64 });
    preprocessorConfig.max_image_size = { longest_edge: tile };
    preprocessorConfig.size = { longest_edge: 2 * tile };
    processorConfig.image_seq_len = (tile / 16 / config.scale_factor) ** 2;
  }
  if (text === 'granite') {
    const tc = config.text_config;
    // GraniteConfig's keys: no head_dim (hidden / heads) or pretraining_tp.
    delete tc.head_dim;
    delete tc.pretraining_tp;
    Object.assign(tc, { model_type: 'granite', architectures: ['GraniteForCausalLM'], ...GRANITE_MULTIPLIERS });
  }
  return { config, preprocessorConfig, processorConfig };
}

/**
 * tokenizer.json as transformers' `GPT2Converter` builds it from the slow tokenizer's files (tokenizer_class
 * GPT2Tokenizer, add_prefix_space false, add_bos_token false): byte-level BPE over vocab.json/merges.txt, ByteLevel
 * pre-tokenizer (GPT-2's split regex), decoder and post-processor; the added tokens of tokenizer_config.json's
 * added_tokens_decoder, and added_tokens.json's `<end_of_utterance>` (id 100352, added by Idefics3Processor as a
 * special token; outside the model's 100,352 embedding rows, so it is never generated).
 */
export async function graniteTokenizerJson(dir = GRANITE_DOCLING_DIR): Promise<Json> {
  const vocab = await readJson('vocab.json', dir);
  const merges = (await readFile(join(dir, 'merges.txt'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#version')).map((l) => l.split(' '));
  const cfg = await readJson('tokenizer_config.json', dir);
  const extra = await readJson('added_tokens.json', dir);
  const added: Json[] = Object.entries(cfg.added_tokens_decoder as Json).map(([id, t]) => ({
    id: Number(id), content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special,
  }));
  for (const [content, id] of Object.entries(extra)) {
    if (!added.some((t) => t.id === id)) added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  }
  added.sort((a, b) => a.id - b.id);
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) => ({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false,
      byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}

/** A planned BF16 file: length, header, then each tensor's pieces. */
export interface GraniteDoclingOptions {
  size: GraniteDoclingSize;
  text?: GraniteDoclingText;
  out: string;
  seed?: number;
  shardBytes?: number;
}

export async function writeGraniteDocling(opts: GraniteDoclingOptions): Promise<WriteResult> {
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  await mkdir(opts.out, { recursive: true });
  const cfgs = await graniteDoclingConfigs(opts.size, opts.text ?? 'llama');
  const specs = idefics3TensorSpecs(parseIdefics3Config(cfgs.config));
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  await writeFile(join(opts.out, 'config.json'), json(cfgs.config));
  await writeFile(join(opts.out, 'preprocessor_config.json'), json(cfgs.preprocessorConfig));
  await writeFile(join(opts.out, 'processor_config.json'), json(cfgs.processorConfig));
  for (const f of COPIED) await writeFile(join(opts.out, f), await readFile(join(GRANITE_DOCLING_DIR, f)));
  await writeFile(join(opts.out, 'tokenizer.json'), JSON.stringify(await graniteTokenizerJson()));

  return writeWeights(opts.out, specs, { seed, shardBytes: opts.shardBytes }, t0);
}

function parseArgs(argv: string[]): GraniteDoclingOptions {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const size = get('--size'), out = get('--out'), text = get('--text') ?? 'llama';
  if ((size !== 'test' && size !== '258m') || !out || (text !== 'llama' && text !== 'granite')) {
    console.error('usage: make-granite-docling.ts --size test|258m [--text llama|granite] --out DIR [--seed N] [--shard-bytes N]');
    process.exit(2);
  }
  const seed = get('--seed'), shard = get('--shard-bytes');
  return { size, text, out, seed: seed ? Number(seed) : 0, shardBytes: shard ? Number(shard) : undefined };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  const r = await writeGraniteDocling(opts);
  for (const f of r.files) console.log(`${join(opts.out, f.name)}: ${f.tensors.length} tensors, ${f.bytes} bytes (header ${f.header.length})`);
  console.log(`${r.tensors} tensors, ${r.weightBytes} bytes in ${(r.ms / 1000).toFixed(2)} s`);
}
