import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir, symlink, readdir, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { HubSource } from '../../src/engine/hub.ts';
import type { LoadProgressEvent } from '../../src/engine/file-source.ts';
import { openCheckpoint, readCheckpointTensors, readShardHeaders, type CheckpointTensor } from '../../src/engine/checkpoint.ts';
import { checkCheckpointHeaders, idefics3Checker, idefics3TensorSpecs } from '../../src/models/idefics3/plan.ts';
import { readHeaderLength, parseSafetensorsHeader, readSafetensors, tensorToF32 } from '../../src/engine/safetensors.ts';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import { checkpointConfigs, planSafetensors, tensorSpecsFor, writeCheckpoint, REAL_MODEL_DIR } from '../../models/make-checkpoint.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { expectCode } from '../helpers/expect-code.ts';

let root: string;
let testDir: string;
let shardedDir: string;
let hub: HubServer;
const repos: Record<string, string> = {};


/** A repo that links every file of `from` except `omit`, with `replace` written in. */
async function variant(name: string, from: string, omit: string[] = [], replace: Record<string, string> = {}): Promise<string> {
  const d = join(root, name);
  await mkdir(d);
  for (const f of await readdir(from)) if (!omit.includes(f) && !(f in replace)) await symlink(join(from, f), join(d, f));
  for (const [f, text] of Object.entries(replace)) await writeFile(join(d, f), text);
  repos[`test/${name}`] = d;
  return d;
}

const sha = async (path: string) => {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
};

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'webvlm-ckpt-'));
  testDir = join(root, 'tiny');
  shardedDir = join(root, 'sharded');
  const t0 = performance.now();
  await writeCheckpoint({ size: 'test', out: testDir, seed: 0 });
  console.log(`test checkpoint written in ${(performance.now() - t0).toFixed(0)} ms`);
  await writeCheckpoint({ size: 'test', out: shardedDir, seed: 0, shardBytes: 8 << 20 });
  repos['test/tiny'] = testDir;
  repos['test/sharded'] = shardedDir;
  await variant('no-tokenizer', testDir, ['tokenizer.json']);
  await variant('no-weights', testDir, ['model.safetensors']);
  await variant('no-config', testDir, ['config.json']);
  await variant('template-in-tokenizer-config', testDir, ['chat_template.json']);
  const cfg = JSON.parse(await readFile(join(testDir, 'config.json'), 'utf8'));
  await variant('three-layers', testDir, [], { 'config.json': JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, num_hidden_layers: 3 } }) });
  await variant('wide', testDir, [], { 'config.json': JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, intermediate_size: 512 } }) });
  const index = JSON.parse(await readFile(join(shardedDir, 'model.safetensors.index.json'), 'utf8'));
  const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
  const moved = { ...index.weight_map, 'lm_head.weight': shards.find((s) => s !== index.weight_map['lm_head.weight']) };
  await variant('index-wrong-shard', shardedDir, [], { 'model.safetensors.index.json': JSON.stringify({ ...index, weight_map: moved }) });
  await variant('index-wrong-total', shardedDir, [], { 'model.safetensors.index.json': JSON.stringify({ ...index, metadata: { total_size: 123 } }) });
  await variant('index-missing-shard', shardedDir, [shards[1]]);
  hub = await startHubServer({ repos });
});

after(async () => {
  await hub?.close();
  await rm(root, { recursive: true, force: true });
});

const source = (repo: string) => new HubSource(repo, { baseUrl: hub.url, retryDelayMs: 5, maxRetryDelayMs: 20 });

async function loadAll(repo: string, events?: LoadProgressEvent[]): Promise<CheckpointTensor[]> {
  const ckpt = await openCheckpoint(source(repo), { label: repo });
  const checker = idefics3Checker(parseIdefics3Config(ckpt.config));
  const out: CheckpointTensor[] = [];
  for await (const t of readCheckpointTensors(ckpt, { checker, onProgress: events ? (e) => events.push(e) : undefined })) out.push(t);
  return out;
}

test('256M layout: 471 tensors, 58,944-byte header, 513,028,808 bytes — planned without writing', async () => {
  const { config } = await checkpointConfigs('256m');
  const specs = tensorSpecsFor(config);
  const plan = planSafetensors('model.safetensors', specs);
  assert.equal(plan.tensors.length, 471);
  assert.equal(plan.header.length, 58_944);
  assert.equal(plan.bytes, 513_028_808);
  // The LFS pointer of the real file says the same size.
  const pointer = await readFile(join(REAL_MODEL_DIR, 'model.safetensors.lfs-pointer.txt'), 'utf8');
  assert.equal(Number(/size (\d+)/.exec(pointer)![1]), plan.bytes);
  // Families, counted.
  const count = (re: RegExp) => specs.filter((s) => re.test(s.name)).length;
  assert.equal(count(/^model\.vision_model\.encoder\.layers\.\d+\./), 12 * 16);
  assert.equal(count(/^model\.text_model\.layers\.\d+\./), 30 * 9);
  const byName = Object.fromEntries(specs.map((s) => [s.name, s.shape]));
  assert.deepEqual(byName['model.vision_model.embeddings.patch_embedding.weight'], [768, 3, 16, 16]);
  assert.deepEqual(byName['model.vision_model.embeddings.position_embedding.weight'], [1024, 768]);
  assert.deepEqual(byName['model.connector.modality_projection.proj.weight'], [576, 12288]);
  assert.deepEqual(byName['model.text_model.layers.29.self_attn.k_proj.weight'], [192, 576]);
  assert.deepEqual(byName['model.text_model.embed_tokens.weight'], [49280, 576]);
  assert.deepEqual(byName['lm_head.weight'], [49280, 576]);
  assert.deepEqual(byName['model.vision_model.post_layernorm.bias'], [768]);
  // Header as the safetensors library writes it: metadata first, names sorted (layers.10 before layers.2).
  const header = parseSafetensorsHeader(plan.header, { fileSize: plan.bytes });
  assert.deepEqual(header.metadata, { format: 'pt' });
  const names = header.tensors.map((t) => t.name);
  assert.deepEqual(names, [...names].sort());
  assert.equal(names[0], 'lm_head.weight');
  assert.ok(new TextDecoder().decode(plan.header).startsWith('{"__metadata__":{"format":"pt"},"lm_head.weight":{"dtype":"BF16","shape":[49280,576],"data_offsets":[0,56770560]}'));
});

test('256M generator writes exactly 513,028,808 bytes / 471 tensors (real data, temp dir)', async (t) => {
  if (process.env.WEBVLM_SKIP_256M) return t.skip('WEBVLM_SKIP_256M set');
  const out = join(root, 'full256m');
  const r = await writeCheckpoint({ size: '256m', out });
  const path = join(out, 'model.safetensors');
  assert.equal((await stat(path)).size, 513_028_808);
  assert.equal(r.tensors, 471);
  const fh = await open(path, 'r');
  const first = Buffer.alloc(8 + 58_944);
  await fh.read(first, 0, first.length, 0);
  await fh.close();
  const n = readHeaderLength(first.subarray(0, 8), { fileSize: 513_028_808 });
  const header = parseSafetensorsHeader(first.subarray(8, 8 + n), { fileSize: 513_028_808 });
  assert.equal(header.tensors.length, 471);
  const checker = idefics3Checker(parseIdefics3Config(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))));
  checker.checkHeader('model.safetensors', header);
  checker.requireComplete('model.safetensors');
  assert.equal(await readFile(join(out, 'config.json'), 'utf8'), await readFile(join(REAL_MODEL_DIR, 'config.json'), 'utf8'));
  console.log(`256M: generated in ${r.ms.toFixed(0)} ms`);
  if (process.env.WEBVLM_PARSE_256M) {
    // Whole-file streaming parse from disk: throughput and peak memory of the parser alone.
    const t0 = performance.now();
    let bytes = 0;
    let peak = 0;
    const stream = Readable.toWeb(createReadStream(path, { highWaterMark: 1 << 16 })) as unknown as ReadableStream<Uint8Array>;
    for await (const x of readSafetensors(stream, { fileSize: 513_028_808 })) {
      bytes += x.bytes.length;
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    const s = (performance.now() - t0) / 1000;
    console.log(`256M parse from disk: ${(bytes / 1e6 / s).toFixed(0)} MB/s, peak arrayBuffers ${(peak / 1e6).toFixed(0)} MB`);
  }
  await rm(out, { recursive: true, force: true });
});

test('test size: consistent config (head_dim 64, image tokens, tokenizer ids) and sensible random values', async () => {
  const cfg = parseIdefics3Config(JSON.parse(await readFile(join(testDir, 'config.json'), 'utf8')));
  const proc = JSON.parse(await readFile(join(testDir, 'processor_config.json'), 'utf8'));
  const pre = JSON.parse(await readFile(join(testDir, 'preprocessor_config.json'), 'utf8'));
  const tok = JSON.parse(await readFile(join(testDir, 'tokenizer.json'), 'utf8'));
  assert.equal(cfg.vision.headDim, 64);
  assert.equal(cfg.text.headDim, 64);
  assert.equal(cfg.text.numAttentionHeads * cfg.text.headDim, cfg.text.hiddenSize);
  assert.equal(cfg.text.vocabSize, 49280);
  assert.equal(cfg.imageSeqLen, proc.image_seq_len);
  assert.equal(proc.image_seq_len, 16);
  assert.equal(pre.max_image_size.longest_edge, cfg.vision.imageSize);
  assert.equal(pre.size.longest_edge, 4 * cfg.vision.imageSize);
  const imageToken = tok.added_tokens.find((t: { content: string }) => t.content === '<image>');
  assert.equal(imageToken.id, cfg.imageTokenId);
  assert.equal(idefics3TensorSpecs(cfg).length, 3 + 2 * 16 + 2 + 1 + 1 + 2 * 9 + 1 + 1);

  const stats = new Map<string, { n: number; sum: number; sq: number }>();
  const stream = Readable.toWeb(createReadStream(join(testDir, 'model.safetensors'))) as unknown as ReadableStream<Uint8Array>;
  for await (const t of readSafetensors(stream)) {
    assert.equal(t.dtype, 'BF16');
    const v = tensorToF32(t);
    const role = /norm|layer_norm/.test(t.name) ? (t.name.endsWith('bias') ? 'norm_bias' : 'norm') : 'other';
    const s = stats.get(role) ?? { n: 0, sum: 0, sq: 0 };
    for (const x of v) {
      if (!Number.isFinite(x)) assert.fail(`${t.name} holds ${x}`);
      s.sum += x; s.sq += x * x;
    }
    s.n += v.length;
    stats.set(role, s);
  }
  const moments = (r: string) => {
    const s = stats.get(r)!;
    const mean = s.sum / s.n;
    return { mean, std: Math.sqrt(s.sq / s.n - mean * mean) };
  };
  const other = moments('other');
  assert.ok(Math.abs(other.mean) < 1e-3 && Math.abs(other.std - 0.02) < 1e-3, JSON.stringify(other));
  const norm = moments('norm');
  assert.ok(Math.abs(norm.mean - 1) < 5e-3 && norm.std > 0.01 && norm.std < 0.03, JSON.stringify(norm));
});

test('generator is deterministic from the seed', async () => {
  const again = join(root, 'again');
  const other = join(root, 'other-seed');
  await writeCheckpoint({ size: 'test', out: again, seed: 0 });
  await writeCheckpoint({ size: 'test', out: other, seed: 1 });
  const a = await sha(join(testDir, 'model.safetensors'));
  assert.equal(await sha(join(again, 'model.safetensors')), a);
  assert.notEqual(await sha(join(other, 'model.safetensors')), a);
  // Sharding does not change any tensor's values: same concatenated data.
  const single = await readFile(join(testDir, 'model.safetensors'));
  const singleHeader = parseSafetensorsHeader(single.subarray(8, 8 + readHeaderLength(single.subarray(0, 8))));
  const index = JSON.parse(await readFile(join(shardedDir, 'model.safetensors.index.json'), 'utf8'));
  const lm = singleHeader.tensors.find((t) => t.name === 'lm_head.weight')!;
  const shard = await readFile(join(shardedDir, index.weight_map['lm_head.weight']));
  const sh = parseSafetensorsHeader(shard.subarray(8, 8 + readHeaderLength(shard.subarray(0, 8))));
  const lm2 = sh.tensors.find((t) => t.name === 'lm_head.weight')!;
  assert.ok(shard.subarray(sh.dataOffset + lm2.begin, sh.dataOffset + lm2.end).equals(single.subarray(singleHeader.dataOffset + lm.begin, singleHeader.dataOffset + lm.end)));
});

test('end to end: the test checkpoint through the hub server — configs, template, every tensor, progress', async () => {
  const ckpt = await openCheckpoint(source('test/tiny'));
  assert.equal(ckpt.config.model_type, 'idefics3');
  assert.equal((ckpt.processorConfig as { image_seq_len: number }).image_seq_len, 16);
  assert.equal(ckpt.generationConfig?.eos_token_id, 49279);
  assert.ok(Array.isArray(ckpt.tokenizer.added_tokens));
  const realTemplate = JSON.parse(await readFile(join(REAL_MODEL_DIR, 'chat_template.json'), 'utf8')).chat_template;
  assert.equal(ckpt.chatTemplate, realTemplate);
  assert.equal(ckpt.weights.length, 1);
  assert.equal(ckpt.weights[0].file.sha256, await sha(join(testDir, 'model.safetensors')));

  const events: LoadProgressEvent[] = [];
  const t0 = performance.now();
  const tensors = await loadAll('test/tiny', events);
  const ms = performance.now() - t0;
  const file = await readFile(join(testDir, 'model.safetensors'));
  console.log(`test checkpoint (${file.length} bytes) over HTTP with sha256: ${ms.toFixed(0)} ms, ${(file.length / 1e3 / ms).toFixed(1)} MB/s`);
  assert.equal(tensors.length, 59);
  const header = parseSafetensorsHeader(file.subarray(8, 8 + readHeaderLength(file.subarray(0, 8))));
  for (const [i, t] of tensors.entries()) {
    const info = header.tensors[i];
    assert.equal(t.name, info.name);
    assert.ok(Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.length).equals(file.subarray(header.dataOffset + info.begin, header.dataOffset + info.end)), t.name);
  }
  const dl = events.filter((e) => e.phase === 'download' && e.file === 'model.safetensors');
  const parse = events.filter((e) => e.phase === 'parse');
  assert.equal(dl.at(-1)!.loaded, file.length);
  assert.equal(parse.at(-1)!.loaded, file.length);
  assert.ok(parse.length >= 59);
});

test('end to end: a dropped connection mid-checkpoint resumes and the hash still verifies', async () => {
  hub.setFault('test/tiny', 'model.safetensors', { dropAfter: { bytes: 5_000_000, times: 2 } });
  const tensors = await loadAll('test/tiny');
  assert.equal(tensors.length, 59);
  assert.ok(hub.requestsFor('test/tiny', 'model.safetensors').some((r) => r.status === 206));
  hub.setFault('test/tiny', 'model.safetensors', { corruptByte: 20_000_000 });
  await expectCode(loadAll('test/tiny'), 'CorruptCheckpoint', /model\.safetensors: sha256 .* does not match/);
  hub.setFault('test/tiny', 'model.safetensors', null);
});

test('sharded: index + shards load in full; index lies are CorruptCheckpoint', async () => {
  const ckpt = await openCheckpoint(source('test/sharded'));
  assert.ok(ckpt.weights.length >= 3);
  const single = await readFile(join(testDir, 'model.safetensors'));
  const singleHeader = parseSafetensorsHeader(single.subarray(8, 8 + readHeaderLength(single.subarray(0, 8))));
  assert.equal(ckpt.indexTotalSize, singleHeader.dataLength);
  const tensors = await loadAll('test/sharded');
  assert.equal(tensors.length, 59);
  assert.deepEqual(new Set(tensors.map((t) => t.file)).size, ckpt.weights.length);
  await expectCode(loadAll('test/index-wrong-shard'), 'CorruptCheckpoint', /lm_head\.weight/);
  await expectCode(loadAll('test/index-wrong-total'), 'CorruptCheckpoint', /total_size 123/);
  await expectCode(openCheckpoint(source('test/index-missing-shard')), 'CorruptCheckpoint', /shard model-00002-of-\d+\.safetensors .* not found/);
});

test('config vs weights: missing tensors and wrong shapes are caught at the header, before the data', async () => {
  const before = hub.requestsFor('test/three-layers', 'model.safetensors').length;
  await expectCode(loadAll('test/three-layers'), 'CorruptCheckpoint', /9 tensor\(s\) missing, e\.g\. model\.text_model\.layers\.2\./);
  await expectCode(loadAll('test/wide'), 'CorruptCheckpoint', /mlp\.down_proj\.weight has shape \[128, 256\], config\.json implies \[128, 512\]/);
  assert.ok(hub.requestsFor('test/three-layers', 'model.safetensors').length - before <= 2);
});

test('headers only: every shard header by range reads, checked against the index and config.json without the data', async () => {
  const ckpt = await openCheckpoint(source('test/sharded'));
  const headers = await readShardHeaders(ckpt.weights);
  assert.deepEqual(headers.map((h) => h.file), ckpt.weights.map((w) => w.file.name));
  assert.equal(headers.reduce((n, h) => n + h.header.tensors.length, 0), 59);
  const config = parseIdefics3Config(ckpt.config);
  checkCheckpointHeaders(config, headers, new Set(ckpt.weights.flatMap((w) => [...w.expected!])));
  const wide = parseIdefics3Config({ ...ckpt.config, text_config: { ...(ckpt.config.text_config as object), intermediate_size: 512 } });
  await expectCode((async () => checkCheckpointHeaders(wide, headers))(), 'CorruptCheckpoint', /^model-0000\d-of-0000\d\.safetensors: tensor model\.text_model\.layers\.0\.mlp\.down_proj\.weight has shape \[128, 256\], config\.json implies \[128, 512\]/);
  const lying = await openCheckpoint(source('test/index-wrong-shard'));
  const since = hub.requests.length;
  await expectCode(readShardHeaders(lying.weights), 'CorruptCheckpoint', /lm_head\.weight/);
  const gets = hub.requests.slice(since).filter((r) => r.method === 'GET');
  assert.ok(gets.length > 0 && gets.every((r) => r.range && /^bytes=(0-7|8-\d+)$/.test(r.range)), `range reads only: ${JSON.stringify(gets)}`);
});

test('missing files: config → ModelNotFound, tokenizer/weights → UnsupportedModel; template falls back to tokenizer_config', async () => {
  await expectCode(openCheckpoint(source('test/no-config'), { label: 'test/no-config' }), 'ModelNotFound', /test\/no-config: config\.json not found/);
  await expectCode(openCheckpoint(source('test/does-not-exist')), 'ModelNotFound');
  await expectCode(openCheckpoint(source('test/no-tokenizer')), 'UnsupportedModel', /tokenizer\.json not found/);
  await expectCode(openCheckpoint(source('test/no-weights')), 'UnsupportedModel', /no model\.safetensors or model\.safetensors\.index\.json/);
  const ck = await openCheckpoint(source('test/template-in-tokenizer-config'));
  assert.equal(ck.chatTemplate, JSON.parse(await readFile(join(testDir, 'tokenizer_config.json'), 'utf8')).chat_template);
});
