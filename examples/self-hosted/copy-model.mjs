#!/usr/bin/env node
/**
 * Copies a Hugging Face checkpoint folder (e.g. from `huggingface-cli download HuggingFaceTB/SmolVLM-256M-Instruct
 * --local-dir smolvlm`) into the hub layout webvlm reads, `{out}/{repo}/resolve/{revision}/{file}`, with exactly the
 * files webvlm uses (src/engine/checkpoint.ts): the required ones must exist, the optional ones are copied when
 * present, everything else (vocab.json, merges.txt, *.onnx, …) is left out.
 *
 *   node copy-model.mjs <checkpoint folder> <repo id> [--revision main] [--out public/models]
 *
 * Then `createEngine('<repo id>', { baseUrl: new URL('/models', location.href).href, revision })`.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REQUIRED = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json'];
export const OPTIONAL = ['processor_config.json', 'chat_template.jinja', 'chat_template.json', 'generation_config.json'];

/** The weight files: model.safetensors, or the index and every shard it names. */
function weightFiles(dir) {
  if (existsSync(join(dir, 'model.safetensors'))) return ['model.safetensors'];
  const index = join(dir, 'model.safetensors.index.json');
  if (!existsSync(index)) throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json (webvlm loads safetensors only)`);
  const shards = [...new Set(Object.values(JSON.parse(readFileSync(index, 'utf8')).weight_map ?? {}))];
  return ['model.safetensors.index.json', ...shards];
}

/** Copies the checkpoint; returns the files copied, relative to the revision folder. */
export function copyModel({ from, repo, revision = 'main', out = 'public/models' }) {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new Error(`repo id ${JSON.stringify(repo)}: expected owner/name`);
  const files = [...REQUIRED, ...weightFiles(from)];
  for (const f of files) if (!existsSync(join(from, f))) throw new Error(`${from}: ${f} is missing; webvlm needs it`);
  files.push(...OPTIONAL.filter((f) => existsSync(join(from, f))));
  const dest = join(resolve(out), repo, 'resolve', revision);
  mkdirSync(dest, { recursive: true });
  for (const f of files) copyFileSync(join(from, f), join(dest, f));
  return { dest, files };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => (args.includes(name) ? args.splice(args.indexOf(name), 2)[1] : fallback);
  const revision = opt('--revision', 'main');
  const out = opt('--out', 'public/models');
  const [from, repo] = args;
  if (!from || !repo || !statSync(from, { throwIfNoEntry: false })?.isDirectory()) {
    console.error('usage: node copy-model.mjs <checkpoint folder> <repo id> [--revision main] [--out public/models]');
    process.exit(2);
  }
  const { dest, files } = copyModel({ from, repo, revision, out });
  console.log(`copied ${files.length} files to ${dest}: ${files.join(', ')}`);
}
