/**
 * Checkpoints that lie or hold garbage fail at load with `CorruptCheckpoint` naming the file and what is wrong,
 * before any GPU memory is sized from them; and a forward pass that produces no finite logit is a typed error,
 * never a sentinel id decoded as a token. Node: the hub server for files; Dawn where a model must really load.
 * Checks that must run before the GPU is touched get a GpuContext that throws on any use.
 */
import type { Idefics3Model } from '../../src/models/idefics3/model.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { HubSource } from '../../src/engine/hub.ts';
import { loadModel } from '../../src/engine/load.ts';
import { estimateCheckpointMemory } from '../../src/engine/memory.ts';
import { parseSafetensorsHeader, readHeaderLength } from '../../src/engine/safetensors.ts';
import { writeCheckpoint } from '../../models/make-checkpoint.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { expectCode } from '../helpers/expect-code.ts';

let root: string, base: string, sharded: string;
let hub: HubServer;
const repos: Record<string, string> = {};

/** A repo linking every file of `from`, with `replace` written in instead. */
async function variant(name: string, from: string, replace: Record<string, string | Uint8Array> = {}): Promise<string> {
  const d = join(root, name);
  await mkdir(d);
  for (const f of await readdir(from)) if (!(f in replace)) await symlink(join(from, f), join(d, f));
  for (const [f, data] of Object.entries(replace)) await writeFile(join(d, f), data);
  repos[`test/${name}`] = d;
  return `test/${name}`;
}

/** config.json of `dir` with the text config changed. */
async function configWith(dir: string, text: Record<string, unknown>): Promise<string> {
  const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  return JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, ...text } });
}

/** model.safetensors of `dir` with element `at` of `tensor` (BF16) set to the bf16 bits given. */
async function poisoned(dir: string, tensor: string, at: number, bits: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(await readFile(join(dir, 'model.safetensors')));
  const h = parseSafetensorsHeader(bytes.subarray(8, 8 + readHeaderLength(bytes.subarray(0, 8))));
  const t = h.tensors.find((x) => x.name === tensor)!;
  assert.equal(t.dtype, 'BF16');
  new DataView(bytes.buffer).setUint16(h.dataOffset + t.begin + 2 * at, bits, true);
  return bytes;
}


/** Any use of this "GPU" throws a plain Error, which no `CorruptCheckpoint` assertion accepts. */
const untouchableGpu = new Proxy({}, {
  get: (_t, p) => {
    throw new Error(`the GPU was used (${String(p)}) before the checkpoint was checked`);
  },
}) as GpuContext;

const source = (repo: string) => new HubSource(repo, { baseUrl: hub.url, retryDelayMs: 5, maxRetryDelayMs: 20 });
const estimate = (repo: string) => estimateCheckpointMemory(source(repo), { model: repo, weights: 'int4', contextLength: 256 });

const NAN_TENSOR = 'model.text_model.layers.1.mlp.down_proj.weight';
const INF_TENSOR = 'model.vision_model.encoder.layers.0.layer_norm1.weight';
const SHARD = /model-0000\d-of-0000\d\.safetensors/;
const v: Record<string, string> = {};

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'webvlm-faults-'));
  base = join(root, 'base');
  sharded = join(root, 'sharded-base');
  await writeCheckpoint({ size: 'test', out: base, seed: 0 });
  await writeCheckpoint({ size: 'test', out: sharded, seed: 0, shardBytes: 8 << 20 });
  repos['test/base'] = base;
  repos['test/sharded'] = sharded;
  v.nan = await variant('nan', base, { 'model.safetensors': await poisoned(base, NAN_TENSOR, 77, 0x7fc0) });
  v.inf = await variant('inf', base, { 'model.safetensors': await poisoned(base, INF_TENSOR, 3, 0xff80) });
  for (const n of [0, 1, 7]) v[`short${n}`] = await variant(`short${n}`, base, { 'model.safetensors': new Uint8Array(n).fill(0x20) });
  const pre = JSON.parse(await readFile(join(base, 'preprocessor_config.json'), 'utf8'));
  v.tile = await variant('tile', base, { 'preprocessor_config.json': JSON.stringify({ ...pre, max_image_size: { longest_edge: 128 } }) });
  v.wide = await variant('wide', base, { 'config.json': await configWith(base, { hidden_size: 1024 }) });
  v.shardedWide = await variant('sharded-wide', sharded, { 'config.json': await configWith(sharded, { hidden_size: 1024 }) });
  v.shardedDeep = await variant('sharded-deep', sharded, { 'config.json': await configWith(sharded, { num_hidden_layers: 40 }) });
  v.shardedFfn = await variant('sharded-ffn', sharded, { 'config.json': await configWith(sharded, { intermediate_size: 8192 }) });
  hub = await startHubServer({ repos });
});

after(async () => {
  await hub?.close();
  await rm(root, { recursive: true, force: true });
});

test('a model.safetensors of 0, 1 or 7 bytes is CorruptCheckpoint (estimate and load), not an API-usage error', async () => {
  for (const n of [0, 1, 7]) {
    const e = await expectCode(estimate(v[`short${n}`]), 'CorruptCheckpoint', new RegExp(`model\\.safetensors: file is ${n} bytes, shorter than the 8-byte header length`));
    assert.equal(e.details?.file, 'model.safetensors');
    assert.doesNotMatch(e.hint, /API documentation/);
    // The loader reads the first file's header from its stream, where this is a truncation.
    await expectCode(loadModel(untouchableGpu, v[`short${n}`], { baseUrl: hub.url }), 'CorruptCheckpoint', new RegExp(`^model\\.safetensors: file truncated: the header length needs 8 bytes at offset 0, the file ends after ${n}`));
  }
});

test('a preprocessor tile that is not the vision tower input is CorruptCheckpoint at load, naming both files and values', async () => {
  const e = await expectCode(loadModel(untouchableGpu, v.tile, { baseUrl: hub.url }), 'CorruptCheckpoint');
  assert.match(e.message, /preprocessor_config\.json max_image_size\.longest_edge 128/);
  assert.match(e.message, /config\.json vision_config\.image_size 64 \(patch_size 8\)/);
});

test('sharded: config.json is checked against every shard header before the memory estimate, naming shard and tensor', async () => {
  // The honest sharded checkpoint estimates exactly as the single file does.
  const [a, b] = [await estimate('test/sharded'), await estimate('test/base')];
  assert.deepEqual([a.weights, a.kvCache, a.activations, a.total], [b.weights, b.kvCache, b.activations, b.total]);
  const wide = await expectCode(estimate(v.shardedWide), 'CorruptCheckpoint', /has shape \[\d+, 128\], config\.json implies \[\d+, 1024\]/);
  assert.match(wide.message, SHARD);
  assert.match(String(wide.details?.file), SHARD);
  assert.equal(typeof wide.details?.tensor, 'string');
  assert.match(wide.message, new RegExp(`tensor ${String(wide.details?.tensor).replace(/\./g, '\\.')}`));
  await expectCode(estimate(v.shardedDeep), 'CorruptCheckpoint', /tensor\(s\) missing, e\.g\. model\.text_model\.layers\.2\./);
  const ffn = await expectCode(estimate(v.shardedFfn), 'CorruptCheckpoint', /mlp\.(gate|up|down)_proj\.weight has shape/);
  assert.match(ffn.message, SHARD);
});

test('a lying config.json fails at load before the GPU is used (sharded and single file)', async () => {
  for (const repo of [v.shardedWide, v.shardedFfn]) {
    const e = await expectCode(loadModel(untouchableGpu, repo, { baseUrl: hub.url, weights: 'int4' }), 'CorruptCheckpoint', /config\.json implies/);
    assert.match(e.message, SHARD);
  }
  await expectCode(loadModel(untouchableGpu, v.shardedDeep, { baseUrl: hub.url }), 'CorruptCheckpoint', /tensor\(s\) missing/);
  await expectCode(loadModel(untouchableGpu, v.wide, { baseUrl: hub.url }), 'CorruptCheckpoint', /^model\.safetensors: tensor .* config\.json implies/);
});

describe('non-finite values (Dawn)', () => {
  const ctx = useDawnContext();

  for (const weights of ['f32', 'int4'] as const) {
    test(`a NaN or -Inf weight is CorruptCheckpoint naming the tensor and file (weights '${weights}')`, { timeout: 300_000 }, async (t) => {
      if (!ctx.gpu) return t.skip(ctx.why);
      const nan = await expectCode(loadModel(ctx.gpu, v.nan, { baseUrl: hub.url, weights }), 'CorruptCheckpoint');
      assert.match(nan.message, new RegExp(`^model\\.safetensors: tensor ${NAN_TENSOR.replace(/\./g, '\\.')} holds NaN at element 77`));
      assert.equal(nan.details?.tensor, NAN_TENSOR);
      assert.equal(nan.details?.file, 'model.safetensors');
      const inf = await expectCode(loadModel(ctx.gpu, v.inf, { baseUrl: hub.url, weights }), 'CorruptCheckpoint');
      assert.match(inf.message, new RegExp(`tensor ${INF_TENSOR.replace(/\./g, '\\.')} holds -Infinity at element 3`));
    });
  }

  test('a forward pass whose logits are all NaN is a typed error from forwardArgmax, not token 0xFFFFFFFF', { timeout: 300_000 }, async (t) => {
    if (!ctx.gpu) return t.skip(ctx.why);
    const gpu = ctx.gpu;
    const m = await loadModel(gpu, 'test/base', { baseUrl: hub.url, weights: 'f32' });
    const caches = [m.model.newCache(16), m.model.newCache(16), m.model.newCache(16)];
    try {
      const ids = [1, 2, 3];
      const good = await m.model.forwardArgmax(ids, caches[0]);
      assert.ok(good >= 0 && good < m.config.text.vocabSize, `a finite model gives a real token (${good})`);
      // Poison the final norm: every logit becomes NaN.
      const norm = (m.model as Idefics3Model).weights.text.norm;
      gpu.device.queue.writeBuffer(norm, 0, new Float32Array(m.config.text.hiddenSize).fill(NaN));
      const e = await expectCode(m.model.forwardArgmax(ids, caches[1]), 'NumericalError', /non-finite logit/);
      assert.doesNotMatch(e.message, /4294967295/);
      const logits = await m.model.forward(ids, caches[2]);
      assert.ok(logits.every(Number.isNaN), 'the poisoned forward really gives NaN logits');
    } finally {
      for (const c of caches) c.destroy(gpu);
      m.model.destroy();
    }
  });
});
