/**
 * The InternVL3 tokenizer from the real files in shared/models/InternVL3-2B (vocab.json, merges.txt,
 * tokenizer_config.json), through the tokenizer.json that models/make-internvl.ts derives (`qwen2TokenizerJson`:
 * what transformers builds for `Qwen2Tokenizer` when only the slow files exist). `null` when the folder is absent
 * (tests then skip, saying so).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/input/tokenizer.ts';
import { qwen2TokenizerJson } from '../../models/make-internvl.ts';

export const INTERNVL3_DIR = fileURLToPath(new URL('../../../shared/models/InternVL3-2B/', import.meta.url));

let cached: Tokenizer | null | undefined;

export function internvl3Tokenizer(chatTemplate?: string): Tokenizer | null {
  if (chatTemplate === undefined && cached !== undefined) return cached;
  if (!existsSync(INTERNVL3_DIR + 'vocab.json')) return (cached = null);
  const config = JSON.parse(readFileSync(INTERNVL3_DIR + 'tokenizer_config.json', 'utf8')) as Record<string, unknown>;
  const tok = Tokenizer.fromFiles({ tokenizerJson: qwen2TokenizerJson(INTERNVL3_DIR), tokenizerConfig: config, chatTemplate });
  if (chatTemplate === undefined) cached = tok;
  return tok;
}
