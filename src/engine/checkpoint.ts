/**
 * A Hugging Face checkpoint as files: the JSON configs (read whole; they are small) and the safetensors weights
 * (one `model.safetensors`, or `model.safetensors.index.json` + shards), which stay handles until
 * `readCheckpointTensors` streams them tensor by tensor. Works on any `FileSource` (hub, cache, memory).
 *
 * Missing files: config.json → `ModelNotFound`; tokenizer / preprocessor / weights → `UnsupportedModel` (the repo
 * exists but is not a checkpoint we can run); a shard named by the index → `CorruptCheckpoint`.
 */
import { WebVLMError } from '../errors.ts';
import { readAll, readJson, readText, type FileHandle, type FileSource, type ProgressCallback } from './file-source.ts';
import { readHeaderByRange, readSafetensors, type SafetensorsDtype, type SafetensorsHeader, type SafetensorsTensor } from './safetensors.ts';
import type { PlanChecker as TensorChecker } from '../models/plan.ts';

type Json = Record<string, unknown>;

export interface WeightShard {
  file: FileHandle;
  /** Tensor names the index assigns to this shard (null for a single-file checkpoint). */
  expected: Set<string> | null;
}

export interface CheckpointFiles {
  config: Json;
  preprocessorConfig: Json;
  processorConfig: Json | null;
  tokenizer: Json;
  tokenizerConfig: Json;
  /** chat_template.jinja, else chat_template.json's `chat_template`, else tokenizer_config's. */
  chatTemplate: string | null;
  generationConfig: Json | null;
  weights: WeightShard[];
  /** The index's `metadata.total_size` (sum of tensor bytes), when sharded and given. */
  indexTotalSize: number | null;
  /** Sum of the weight files' sizes when all are known. */
  weightFileBytes: number | null;
}

export interface OpenOptions {
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** Where the files come from, for messages (e.g. "HuggingFaceTB/SmolVLM-256M-Instruct@main"). */
  label?: string;
  /** Called with the files found and their sizes as soon as they are opened (before their bytes are read). */
  onFiles?: (files: Array<{ name: string; size: number | null }>) => void;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

async function jsonObject(h: FileHandle, opts: OpenOptions): Promise<Json> {
  const v = await readJson(h, { signal: opts.signal, onProgress: opts.onProgress });
  if (!isObject(v)) throw new WebVLMError('CorruptCheckpoint', `${h.name} is not a JSON object.`, { details: { file: h.name } });
  return v;
}

const SHARD_NAME = /^[^/\\]+\.safetensors$/;

export async function openCheckpoint(source: FileSource, opts: OpenOptions = {}): Promise<CheckpointFiles> {
  const label = opts.label ?? 'checkpoint';
  const open = (f: string) => source.open(f, { signal: opts.signal });
  const configHandle = await open('config.json');
  if (!configHandle) {
    throw new WebVLMError('ModelNotFound', `${label}: config.json not found.`, { details: { file: 'config.json' } });
  }
  const [pre, proc, tok, tokCfg, chatJinja, chatJson, gen, single, index] = await Promise.all([
    open('preprocessor_config.json'), open('processor_config.json'), open('tokenizer.json'), open('tokenizer_config.json'),
    open('chat_template.jinja'), open('chat_template.json'), open('generation_config.json'),
    open('model.safetensors'), open('model.safetensors.index.json'),
  ]);
  opts.onFiles?.([configHandle, pre, proc, tok, tokCfg, chatJinja, chatJson, gen, single, index].filter((h): h is FileHandle => h !== null).map((h) => ({ name: h.name, size: h.size })));
  const need = (h: FileHandle | null, name: string): FileHandle => {
    if (!h) throw new WebVLMError('UnsupportedModel', `${label}: ${name} not found; webvlm needs it to run the model.`, { details: { file: name } });
    return h;
  };
  const [config, preprocessorConfig, processorConfig, tokenizer, tokenizerConfig, generationConfig] = await Promise.all([
    jsonObject(configHandle, opts), jsonObject(need(pre, 'preprocessor_config.json'), opts), proc ? jsonObject(proc, opts) : null,
    jsonObject(need(tok, 'tokenizer.json'), opts), jsonObject(need(tokCfg, 'tokenizer_config.json'), opts), gen ? jsonObject(gen, opts) : null,
  ]);

  let chatTemplate: string | null = null;
  if (chatJinja) {
    chatTemplate = await readText(chatJinja, { signal: opts.signal, onProgress: opts.onProgress });
  } else if (chatJson) {
    const j = await jsonObject(chatJson, opts);
    if (typeof j.chat_template !== 'string') throw new WebVLMError('CorruptCheckpoint', 'chat_template.json has no chat_template string.', { details: { file: 'chat_template.json' } });
    chatTemplate = j.chat_template;
  } else if (typeof tokenizerConfig.chat_template === 'string') {
    chatTemplate = tokenizerConfig.chat_template;
  }

  const { weights, indexTotalSize } = await weightShards(source, single, index, opts);
  const sizes = weights.map((w) => w.file.size);
  const weightFileBytes = sizes.every((s) => s !== null) ? (sizes as number[]).reduce((a, b) => a + b, 0) : null;
  return { config, preprocessorConfig, processorConfig, tokenizer, tokenizerConfig, chatTemplate, generationConfig, weights, indexTotalSize, weightFileBytes };
}

/**
 * The weight files: `model.safetensors` (`single`, when the source has it), else the shards the index names, each
 * with the tensors assigned to it. Shared by `openCheckpoint` and the memory estimate, so both see the same files.
 */
export async function weightShards(source: FileSource, single: FileHandle | null, index: FileHandle | null, opts: OpenOptions = {}): Promise<{ weights: WeightShard[]; indexTotalSize: number | null }> {
  const label = opts.label ?? 'checkpoint';
  const open = (f: string) => source.open(f, { signal: opts.signal });
  let weights: WeightShard[];
  let indexTotalSize: number | null = null;
  if (single) {
    weights = [{ file: single, expected: null }];
  } else if (index) {
    const idx = await jsonObject(index, opts);
    const map = idx.weight_map;
    if (!isObject(map)) throw new WebVLMError('CorruptCheckpoint', 'model.safetensors.index.json has no weight_map object.', { details: { file: index.name } });
    const byShard = new Map<string, Set<string>>();
    for (const [tensor, shard] of Object.entries(map)) {
      if (typeof shard !== 'string' || !SHARD_NAME.test(shard)) {
        throw new WebVLMError('CorruptCheckpoint', `model.safetensors.index.json maps ${tensor} to ${JSON.stringify(shard)}, not a .safetensors file name.`, { details: { file: index.name } });
      }
      let set = byShard.get(shard);
      if (!set) byShard.set(shard, (set = new Set()));
      set.add(tensor);
    }
    if (!byShard.size) throw new WebVLMError('CorruptCheckpoint', 'model.safetensors.index.json maps no tensors.', { details: { file: index.name } });
    const meta = idx.metadata;
    if (isObject(meta) && typeof meta.total_size === 'number') indexTotalSize = meta.total_size;
    const names = [...byShard.keys()].sort();
    const handles = await Promise.all(names.map(open));
    opts.onFiles?.(handles.filter((h): h is FileHandle => h !== null).map((h) => ({ name: h.name, size: h.size })));
    weights = names.map((n, i) => {
      const h = handles[i];
      if (!h) throw new WebVLMError('CorruptCheckpoint', `${label}: shard ${n} named by model.safetensors.index.json not found.`, { details: { file: n } });
      return { file: h, expected: byShard.get(n)! };
    });
  } else {
    throw new WebVLMError('UnsupportedModel', `${label}: no model.safetensors or model.safetensors.index.json; webvlm loads safetensors checkpoints only.`);
  }
  return { weights, indexTotalSize };
}

/** A shard's header must hold exactly the tensors the index assigns to it (no check for a single file). */
function checkShardAssignment(shard: WeightShard, h: SafetensorsHeader): void {
  if (!shard.expected) return;
  const file = shard.file.name;
  const names = new Set(h.tensors.map((t) => t.name));
  for (const t of h.tensors) {
    if (!shard.expected.has(t.name)) {
      throw new WebVLMError('CorruptCheckpoint', `${file} holds ${t.name}, which model.safetensors.index.json does not assign to it.`, { details: { file, tensor: t.name } });
    }
  }
  for (const n of shard.expected) {
    if (!names.has(n)) throw new WebVLMError('CorruptCheckpoint', `${file} lacks ${n}, which model.safetensors.index.json assigns to it.`, { details: { file, tensor: n } });
  }
}

export interface ShardHeader {
  file: string;
  header: SafetensorsHeader;
}

/**
 * Every weight file's header by range reads (8 bytes + the JSON per file; no tensor data), each checked against the
 * index. What config.json says can then be checked against the real tensors before anything is sized from it.
 */
export async function readShardHeaders(weights: readonly WeightShard[], opts: { signal?: AbortSignal; weightDtypes?: readonly SafetensorsDtype[] | null } = {}): Promise<ShardHeader[]> {
  // All at once (each is two small round trips); failures are reported in file order, whichever settled first.
  const read = await Promise.allSettled(weights.map((w) => readHeaderByRange(w.file, opts)));
  return weights.map((shard, i) => {
    const r = read[i];
    if (r.status === 'rejected') throw r.reason;
    checkShardAssignment(shard, r.value);
    return { file: shard.file.name, header: r.value };
  });
}

function readAllBytes(h: FileHandle, opts: OpenOptions): Promise<Uint8Array> {
  return readAll(h, { signal: opts.signal, onProgress: opts.onProgress });
}

export interface TensorReadOptions {
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  weightDtypes?: readonly SafetensorsDtype[] | null;
  /** Checks names and shapes against the config before any data is read (per shard), and completeness at the end. */
  checker?: TensorChecker;
}

export interface CheckpointTensor extends SafetensorsTensor {
  file: string;
}

/**
 * Every tensor of the checkpoint, shard by shard in file order, downloaded and parsed as it streams. Each shard's
 * header is checked (against the index and the `checker`) before its data is read; the index's total_size and the
 * checker's completeness are checked after the last tensor.
 */
export async function* readCheckpointTensors(ckpt: CheckpointFiles, opts: TensorReadOptions = {}): AsyncGenerator<CheckpointTensor, void, undefined> {
  let tensorBytes = 0;
  if (opts.checker && ckpt.weights.every((w) => w.expected)) {
    // Sharded: the index lists every tensor, so a missing one fails before any download.
    opts.checker.requireNames('model.safetensors.index.json', new Set(ckpt.weights.flatMap((w) => [...w.expected!])));
  }
  for (const shard of ckpt.weights) {
    const file = shard.file.name;
    const onHeader = (h: SafetensorsHeader) => {
      checkShardAssignment(shard, h);
      opts.checker?.checkHeader(file, h);
      if (!shard.expected) opts.checker?.requireNames(file, new Set(h.tensors.map((t) => t.name)));
      tensorBytes += h.dataLength;
    };
    const stream = shard.file.stream({ signal: opts.signal, onProgress: opts.onProgress });
    const parse = opts.onProgress ? (e: { phase: 'parse'; file: string; loaded: number; total: number }) => opts.onProgress!(e) : undefined;
    for await (const t of readSafetensors(stream, { file, fileSize: shard.file.size, weightDtypes: opts.weightDtypes, onHeader, onProgress: parse, signal: opts.signal })) {
      yield { ...t, file };
    }
  }
  if (ckpt.indexTotalSize !== null && ckpt.indexTotalSize !== tensorBytes) {
    throw new WebVLMError('CorruptCheckpoint', `model.safetensors.index.json says total_size ${ckpt.indexTotalSize}, the shards hold ${tensorBytes} bytes of tensors.`, {
      details: { expected: ckpt.indexTotalSize, got: tensorBytes },
    });
  }
  opts.checker?.requireComplete('checkpoint');
}
