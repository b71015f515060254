/**
 * Loader fuzz (Node, Dawn/lavapipe): the random test checkpoint with its safetensors header and config.json mutated
 * (deterministic seed, bounded iterations and time) goes through what `createEngine` runs in the worker — the
 * memory estimate (config + header range reads) and `loadModel` (checkpoint files, config, tokenizer, processor,
 * header checks, streaming, quantization and upload to the GPU). Each run must end in success or a `WebVLMError`
 * with a stable code other than `Internal` — no TypeError/RangeError, no crash, no hang (a per-run time limit).
 * The unit-level fuzz in tests/engine/safetensors.test.ts covers the parser alone; this one covers the whole loader.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dawnGpu } from '../harness/dawn.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { WebVLMError } from '../../src/errors.ts';
import { loadModel } from '../../src/engine/load.ts';
import { estimateCheckpointMemory } from '../../src/engine/memory.ts';
import type { FileHandle, FileSource } from '../../src/engine/file-source.ts';
import { ensureTestModel, TEST_MODEL_DIR } from './helpers.ts';

const ITERATIONS = 60;
const BUDGET_MS = 150_000;
const RUN_LIMIT_MS = 30_000;

/** Files in memory, streamed in uneven chunks. */
class MemSource implements FileSource {
  constructor(private readonly files: Map<string, Uint8Array>) {}
  async open(file: string): Promise<FileHandle | null> {
    const b = this.files.get(file);
    if (!b) return null;
    return {
      name: file, size: b.length, sha256: null,
      stream: () => {
        let at = 0;
        return new ReadableStream<Uint8Array>({
          pull(c) {
            if (at >= b.length) return c.close();
            const n = Math.min(b.length - at, 1_000_003);
            c.enqueue(b.slice(at, at + n));
            at += n;
          },
        });
      },
      range: async (s, e) => b.slice(s, Math.min(e, b.length)),
    };
  }
}

/** mulberry32: a small deterministic PRNG. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] };
}
type Rng = ReturnType<typeof rng>;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const WILD = [0, -1, 1, 3, 7, 1.5, 1e9, 2 ** 31, 2 ** 53, -(2 ** 40), null, '12', 'x', true, [], {}, [1, 2]];

/** Every (object, key) pair in a JSON tree. */
function slots(o: unknown, out: Array<[Json, string]> = []): Array<[Json, string]> {
  if (o && typeof o === 'object') {
    for (const k of Object.keys(o)) {
      out.push([o as Json, k]);
      slots((o as Json)[k], out);
    }
  }
  return out;
}

/** The config fields the loader reads (mutating these finds more than renaming an unused label). */
const HOT = /^(model_type|vision_config|text_config|scale_factor|image_token_id|tie_word_embeddings|hidden_size|intermediate_size|num_hidden_layers|num_attention_heads|num_key_value_heads|head_dim|image_size|patch_size|vocab_size|max_position_embeddings|rms_norm_eps|rope_theta|eos_token_id|num_channels|layer_norm_eps|hidden_act)$/;

function mutateConfig(cfg: Json, r: Rng): string {
  const all = slots(cfg);
  const hot = all.filter(([, k]) => HOT.test(k));
  const [obj, key] = r.next() < 0.8 ? r.pick(hot) : r.pick(all);
  if (r.next() < 0.15) {
    delete obj[key];
    return `config: delete ${key}`;
  }
  const v = r.pick(WILD);
  obj[key] = typeof v === 'object' && v !== null ? structuredClone(v) : v;
  return `config: ${key} = ${JSON.stringify(v)}`;
}

function splitSafetensors(b: Uint8Array): { n: number; header: Json; data: Uint8Array } {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return { n, header: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))), data: b.subarray(8 + n) };
}

function joinSafetensors(header: Json, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function mutateWeights(b: Uint8Array, r: Rng): { bytes: Uint8Array; what: string } {
  const { n, header, data } = splitSafetensors(b);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = r.pick(names);
  const t = header[name];
  switch (r.int(9)) {
    case 0: {
      const d = r.pick(['F32', 'F16', 'BF16', 'I8', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'Q4_K', '', 7]);
      t.dtype = d;
      return { bytes: joinSafetensors(header, data), what: `${name}.dtype = ${JSON.stringify(d)}` };
    }
    case 1: {
      const i = r.int(t.shape.length + 1);
      const v = r.pick([0, 1, 2, -1, 1e9, 2 ** 53, 1.5, null, 'a']);
      t.shape = [...t.shape];
      t.shape[i] = v;
      return { bytes: joinSafetensors(header, data), what: `${name}.shape[${i}] = ${JSON.stringify(v)}` };
    }
    case 2: {
      const d = r.pick([-2, 2, 4096, -4096, 1e12, -1e12]);
      const which = r.int(2);
      t.data_offsets = [...t.data_offsets];
      t.data_offsets[which] += d;
      return { bytes: joinSafetensors(header, data), what: `${name}.data_offsets[${which}] += ${d}` };
    }
    case 3:
      delete header[name];
      return { bytes: joinSafetensors(header, data), what: `delete ${name}` };
    case 4:
      header[`${name}.x`] = t;
      delete header[name];
      return { bytes: joinSafetensors(header, data), what: `rename ${name}` };
    case 5: {
      const at = 8 + r.int(n);
      const out = b.slice();
      out[at] = r.int(256);
      return { bytes: out, what: `header byte ${at} = ${out[at]}` };
    }
    case 6: {
      const out = b.slice();
      const v = r.pick([0, 1, 7, n - 1, n + 1, n * 2, b.length, 2 ** 40]);
      new DataView(out.buffer).setBigUint64(0, BigInt(v), true);
      return { bytes: out, what: `header length = ${v}` };
    }
    case 7: {
      const cut = r.int(b.length);
      return { bytes: b.slice(0, cut), what: `truncated to ${cut} bytes` };
    }
    default: {
      header.__metadata__ = r.pick([{ format: 'pt' }, { format: 7 }, 'x', [], null]);
      return { bytes: joinSafetensors(header, data), what: `__metadata__ = ${JSON.stringify(header.__metadata__)}` };
    }
  }
}

let gpu: GpuContext | null = null;
let why = '';
const base = new Map<string, Uint8Array>();

before(async () => {
  await ensureTestModel();
  for (const f of readdirSync(TEST_MODEL_DIR)) base.set(f, new Uint8Array(readFileSync(join(TEST_MODEL_DIR, f))));
  const g = await dawnGpu();
  if (!g) return void (why = 'Dawn unavailable');
  try {
    gpu = await GpuContext.create({ gpu: g });
  } catch (e) {
    why = (e as Error).message;
  }
});
after(() => gpu?.destroy());

test(`loader fuzz: ${ITERATIONS} mutated checkpoints (config.json, safetensors header) give success or typed errors only`, { timeout: BUDGET_MS + 120_000 }, async (t) => {
  if (!gpu) return t.skip(`no GPU in Node: ${why}`);
  const r = rng(20261122);
  const codes = new Map<string, number>();
  const failures: string[] = [];
  const t0 = Date.now();
  let runs = 0;
  for (let i = 0; i < ITERATIONS && Date.now() - t0 < BUDGET_MS; i++) {
    const files = new Map(base);
    let what: string;
    if (r.next() < 0.5) {
      const cfg = JSON.parse(new TextDecoder().decode(base.get('config.json')!)) as Json;
      what = mutateConfig(cfg, r);
      files.set('config.json', new TextEncoder().encode(JSON.stringify(cfg)));
    } else {
      const m = mutateWeights(base.get('model.safetensors')!, r);
      what = m.what;
      files.set('model.safetensors', m.bytes);
    }
    const source = new MemSource(files);
    if (process.env.WEBVLM_FUZZ_TRACE) console.error(`#${i} ${what}`);
    const started = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no result after ${RUN_LIMIT_MS} ms`)), RUN_LIMIT_MS)));
    let outcome: string;
    try {
      await Promise.race([
        (async () => {
          await estimateCheckpointMemory(source, { model: 'fuzz', weights: 'int4', contextLength: 256 });
          const m = await loadModel(gpu!, 'fuzz', { source, weights: 'int4' });
          m.model.destroy();
        })(),
        hang,
      ]);
      outcome = 'ok';
    } catch (e) {
      if (e instanceof WebVLMError && e.code !== 'Internal') outcome = e.code;
      else {
        outcome = 'UNTYPED';
        failures.push(`#${i} ${what}: ${(e as Error)?.name} ${(e as Error)?.message}`);
      }
    } finally {
      clearTimeout(timer);
    }
    runs++;
    codes.set(outcome, (codes.get(outcome) ?? 0) + 1);
    t.diagnostic(`#${i} ${what} → ${outcome} (${Date.now() - started} ms)`);
  }
  await gpu.sync();
  t.diagnostic(`${runs} runs in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.deepEqual(failures, [], 'every failure is a typed WebVLMError');
  assert.ok(runs >= 20, `only ${runs} runs fit the time budget`);
  assert.ok((codes.get('CorruptCheckpoint') ?? 0) > 0 && (codes.get('UnsupportedModel') ?? 0) > 0, 'the mutations reach both config and header checks');
});
