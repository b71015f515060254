/**
 * Deterministic random-weight SmolVLM (Idefics3) checkpoints in the exact Hugging Face layout, for loader tests
 * and benchmarks without downloading the real model.
 *
 *   node --import ./tests/node/register.mjs models/make-checkpoint.ts --size test|256m --out DIR [--seed N] [--shard-bytes N]
 *
 * `256m`: the real SmolVLM-256M-Instruct config, tensor names and shapes: 471 bf16 tensors, a 58,944-byte header,
 * 513,028,808 bytes in all — the size of the real model.safetensors (the header is written the way the safetensors
 * library writes it: `__metadata__: {format: pt}` first, then tensors sorted by name, offsets in that order, compact
 * JSON padded with spaces to a multiple of 8). `test`: the same names and structure with small dims
 * (head_dim 64 in both towers, as our kernels need; the real 49,280-token vocabulary so the real tokenizer's ids
 * are valid), about 25 MB. Tokenizer and chat-template files are copied from the real model.
 *
 * Weights: linear/conv/embedding/bias ~ N(0, 0.02²) (transformers' initializer range), norm weights 1 + N(0, 0.02²),
 * norm biases N(0, 0.02²) — not exactly 1/0, so a kernel that ignores a norm's weight or bias is caught.
 * Each tensor's values depend only on (seed, name), so shard layout and order do not change them.
 * Data is generated and written in 4 MiB pieces: memory stays small even for 256M.
 */
import { open, mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseIdefics3Config } from '../src/models/idefics3/config.ts';
import { idefics3TensorSpecs } from '../src/models/idefics3/plan.ts';
import type { TensorRole, TensorSpec } from '../src/models/plan.ts';

export type CheckpointSize = 'test' | '256m';

export const REAL_MODEL_DIR = fileURLToPath(new URL('../../shared/models/SmolVLM-256M-Instruct/', import.meta.url));

/** Copied verbatim for both sizes. */
const COPIED = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', 'chat_template.json', 'generation_config.json'];

// Configs are edited by key path; `any` keeps that terse in a generator script.
type Json = Record<string, any>;

export interface CheckpointConfigs {
  config: Json;
  preprocessorConfig: Json;
  processorConfig: Json;
}

async function readJsonFile(dir: string, name: string): Promise<Json> {
  return JSON.parse(await readFile(join(dir, name), 'utf8')) as Json;
}

/** config.json / preprocessor_config.json / processor_config.json for a size (256m: the real files). */
export async function checkpointConfigs(size: CheckpointSize, realDir = REAL_MODEL_DIR): Promise<CheckpointConfigs> {
  const config = await readJsonFile(realDir, 'config.json');
  const preprocessorConfig = await readJsonFile(realDir, 'preprocessor_config.json');
  const processorConfig = await readJsonFile(realDir, 'processor_config.json');
  if (size === '256m') return { config, preprocessorConfig, processorConfig };

  // test: 64 px tiles of 8 px patches → 8×8 patches, pixel shuffle ×2 → 16 image tokens per frame.
  const imageSize = 64;
  const scale = 2;
  Object.assign(config.vision_config, {
    hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2,
    image_size: imageSize, patch_size: 8, max_image_size: { longest_edge: imageSize }, size: { longest_edge: 4 * imageSize },
  });
  Object.assign(config.text_config, {
    hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 64,
    pixel_shuffle_factor: scale,
  });
  config.scale_factor = scale;
  preprocessorConfig.max_image_size = { longest_edge: imageSize };
  preprocessorConfig.size = { longest_edge: 4 * imageSize };
  processorConfig.image_seq_len = (imageSize / 8 / scale) ** 2;
  return { config, preprocessorConfig, processorConfig };
}

export function tensorSpecsFor(config: Json): TensorSpec[] {
  return idefics3TensorSpecs(parseIdefics3Config(config));
}

export interface PlannedTensor extends TensorSpec {
  begin: number;
  end: number;
}

export interface PlannedFile {
  name: string;
  header: Uint8Array;
  tensors: PlannedTensor[];
  /** 8 + header + data */
  bytes: number;
}

/** The dtype the weights are written in: BF16 (SmolVLM's checkpoints) or F32 (SmolVLM2's, `torch_dtype: float32`). */
export type WeightDtype = 'BF16' | 'F32';
const DTYPE_BYTES: Record<WeightDtype, number> = { BF16: 2, F32: 4 };
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The safetensors file for these tensors, as the safetensors library lays it out (without writing any data). */
export function planSafetensors(name: string, specs: readonly TensorSpec[], dtype: WeightDtype = 'BF16'): PlannedFile {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const tensors: PlannedTensor[] = [];
  let at = 0;
  for (const s of sorted) {
    const end = at + numel(s.shape) * DTYPE_BYTES[dtype];
    header[s.name] = { dtype, shape: s.shape, data_offsets: [at, end] };
    tensors.push({ ...s, begin: at, end });
    at = end;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const bytes = new TextEncoder().encode(json);
  return { name, header: bytes, tensors, bytes: 8 + bytes.length + at };
}

/** Splits name-sorted tensors into shards of at most `shardBytes` of data (HF naming: model-00001-of-00003.safetensors). */
export function planShards(specs: readonly TensorSpec[], shardBytes: number, dtype: WeightDtype = 'BF16'): PlannedFile[] {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const groups: TensorSpec[][] = [];
  let cur: TensorSpec[] = [];
  let curBytes = 0;
  for (const s of sorted) {
    const b = numel(s.shape) * DTYPE_BYTES[dtype];
    if (cur.length && curBytes + b > shardBytes) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(s);
    curBytes += b;
  }
  if (cur.length) groups.push(cur);
  const n = String(groups.length).padStart(5, '0');
  return groups.map((g, i) => planSafetensors(`model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`, g, dtype));
}

// ---- deterministic random bf16 ----

/** 65,536 standard-normal samples from a fixed seed: a random 16-bit index into it is a normal draw (at bf16 precision plenty). */
const NORMAL = (() => {
  const out = new Float64Array(65536);
  let s = 0x9e3779b9 >>> 0;
  const uniform = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    out[i + 1] = r * Math.sin(t);
  }
  return out;
})();

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Round-to-nearest-even f32 → bf16 bits (finite inputs). */
export function f32ToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

const INIT: Record<TensorRole, { mean: number; std: number }> = {
  linear: { mean: 0, std: 0.02 }, conv: { mean: 0, std: 0.02 }, embedding: { mean: 0, std: 0.02 },
  bias: { mean: 0, std: 0.02 }, norm: { mean: 1, std: 0.02 }, norm_bias: { mean: 0, std: 0.02 },
};
const tables = new Map<TensorRole, Uint16Array>();
function bf16Table(role: TensorRole): Uint16Array {
  let t = tables.get(role);
  if (!t) {
    const { mean, std } = INIT[role];
    t = new Uint16Array(65536);
    for (let i = 0; i < t.length; i++) t[i] = f32ToBf16Bits(mean + std * NORMAL[i]);
    tables.set(role, t);
  }
  return t;
}

/** FNV-1a of the name mixed with the seed: a per-tensor xorshift32 state, never 0. */
function tensorSeed(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** A tensor's bf16 bytes in pieces (views of one reused buffer: consume each before asking for the next). */
export function* tensorPieces(spec: TensorSpec, seed: number, pieceElems = 1 << 21): Generator<Uint8Array> {
  const table = bf16Table(spec.role);
  const n = numel(spec.shape);
  const buf = new Uint16Array(Math.min(pieceElems, n + (n & 1)));
  let s = tensorSeed(spec.name, seed);
  for (let done = 0; done < n; ) {
    const m = Math.min(buf.length, n - done);
    for (let i = 0; i < m; i += 2) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      buf[i] = table[s & 0xffff];
      buf[i + 1] = table[s >>> 16]; // one past m on an odd count; never emitted
    }
    yield new Uint8Array(buf.buffer, 0, m * 2);
    done += m;
  }
}

/** Writes a planned file; `F32` writes the same bf16-valued draws widened exactly (bf16 bits << 16). */
export async function writeSafetensors(path: string, plan: PlannedFile, seed: number, dtype: WeightDtype = 'BF16'): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(plan.header.length), true);
    await fh.write(len);
    await fh.write(plan.header);
    for (const t of plan.tensors) {
      for (const piece of tensorPieces(t, seed)) {
        if (dtype === 'BF16') {
          await fh.write(piece);
          continue;
        }
        const h = new Uint16Array(piece.buffer, piece.byteOffset, piece.length >>> 1);
        const w = new Uint32Array(h.length);
        for (let i = 0; i < h.length; i++) w[i] = h[i] << 16;
        await fh.write(new Uint8Array(w.buffer));
      }
    }
  } finally {
    await fh.close();
  }
}

export interface WriteOptions {
  size: CheckpointSize;
  out: string;
  seed?: number;
  /** Shard the weights (model.safetensors.index.json + shards) when set. */
  shardBytes?: number;
  realDir?: string;
}

export interface WriteResult {
  files: PlannedFile[];
  tensors: number;
  weightBytes: number;
  ms: number;
}

export async function writeCheckpoint(opts: WriteOptions): Promise<WriteResult> {
  const t0 = performance.now();
  const realDir = opts.realDir ?? REAL_MODEL_DIR;
  const seed = opts.seed ?? 0;
  await mkdir(opts.out, { recursive: true });
  const cfgs = await checkpointConfigs(opts.size, realDir);
  const specs = tensorSpecsFor(cfgs.config);
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  // Copies are written (not copyFile'd) so they are not read-only like the originals and a rerun can overwrite them.
  const copy = async (f: string) => writeFile(join(opts.out, f), await readFile(join(realDir, f)));
  if (opts.size === '256m') {
    for (const f of ['config.json', 'preprocessor_config.json', 'processor_config.json']) await copy(f);
  } else {
    await writeFile(join(opts.out, 'config.json'), json(cfgs.config));
    await writeFile(join(opts.out, 'preprocessor_config.json'), json(cfgs.preprocessorConfig));
    await writeFile(join(opts.out, 'processor_config.json'), json(cfgs.processorConfig));
  }
  for (const f of COPIED) await copy(f);

  return writeWeights(opts.out, specs, { seed, shardBytes: opts.shardBytes }, t0);
}

/**
 * The weights of `specs` with random values from `seed`: one model.safetensors, or shards of at most `shardBytes`
 * with their model.safetensors.index.json (weight_map and metadata.total_size, as transformers writes them).
 */
export async function writeWeights(out: string, specs: readonly TensorSpec[], o: { seed: number; shardBytes?: number; dtype?: WeightDtype }, t0 = performance.now()): Promise<WriteResult> {
  const dtype = o.dtype ?? 'BF16';
  const files = o.shardBytes ? planShards(specs, o.shardBytes, dtype) : [planSafetensors('model.safetensors', specs, dtype)];
  if (o.shardBytes) {
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (const f of files) for (const t of f.tensors) {
      weightMap[t.name] = f.name;
      total += t.end - t.begin;
    }
    await writeFile(join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  }
  for (const f of files) await writeSafetensors(join(out, f.name), f, o.seed, dtype);
  return { files, tensors: specs.length, weightBytes: files.reduce((a, f) => a + f.bytes, 0), ms: performance.now() - t0 };
}

function parseArgs(argv: string[]): WriteOptions {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const size = get('--size');
  const out = get('--out');
  if ((size !== 'test' && size !== '256m') || !out) {
    console.error('usage: make-checkpoint.ts --size test|256m --out DIR [--seed N] [--shard-bytes N]');
    process.exit(2);
  }
  const seed = get('--seed');
  const shard = get('--shard-bytes');
  return { size, out, seed: seed ? Number(seed) : 0, shardBytes: shard ? Number(shard) : undefined };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs(process.argv.slice(2));
  const r = await writeCheckpoint(opts);
  for (const f of r.files) console.log(`${join(opts.out, f.name)}: ${f.tensors.length} tensors, ${f.bytes} bytes (header ${f.header.length})`);
  console.log(`${r.tensors} tensors, ${r.weightBytes} bytes in ${(r.ms / 1000).toFixed(2)} s`);
}
