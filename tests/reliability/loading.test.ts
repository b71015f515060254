/**
 * Loading through the whole public path in Chromium — `createEngine` → worker → cache → hub download → loader —
 * against a local hub server (CORS, fault injection) serving the random test checkpoint and broken variants of it:
 * the browser cache (offline second load, list/delete/clear, eviction and repair of a corrupt cached file, quota),
 * the typed errors of broken checkpoints, resume after a dropped connection, abort of a slow download, and the
 * early GPU-memory check. No chat here (see engine.test.ts), so no pipeline compilation: each load is seconds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { modelVariant, openRel, testConfig, testWeights, TEST_MODEL_DIR, type Rel } from './helpers.ts';

const REPO = 'webvlm-test/random-smolvlm';
const T = { timeout: 180_000 };

/** The test checkpoint's safetensors with its header JSON rewritten by `edit` (data unchanged). */
function withHeader(edit: (h: Record<string, any>) => void, opts: { truncateTo?: number } = {}): Buffer { // eslint-disable-line @typescript-eslint/no-explicit-any
  const buf = testWeights();
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  let json = Buffer.from(JSON.stringify(header));
  if (json.length < n) json = Buffer.concat([json, Buffer.alloc(n - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const out = Buffer.concat([len, json, buf.subarray(8 + n)]);
  return opts.truncateTo ? out.subarray(0, opts.truncateTo) : out;
}

/** Name of the first tensor (in file order) of the test checkpoint. */
function firstTensor(h: Record<string, any>): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  return Object.keys(h).filter((k) => k !== '__metadata__').sort((a, b) => h[a].data_offsets[0] - h[b].data_offsets[0])[0];
}

describe('loading through createEngine in Chromium: cache, typed errors, resume, abort, memory check', () => {
  let rel: Rel;
  let hub: HubServer;
  const variants: Array<{ remove(): void }> = [];
  const repos: Record<string, string> = { [REPO]: TEST_MODEL_DIR };

  /** Serves a broken variant as its own repo; returns the repo id. */
  const variant = (name: string, edits: Record<string, Buffer | string | null>) => {
    const v = modelVariant(edits);
    variants.push(v);
    repos[`webvlm-test/${name}`] = v.dir;
    return `webvlm-test/${name}`;
  };
  const cfg = (edit: (c: Record<string, any>) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const c = testConfig();
    edit(c);
    return JSON.stringify(c);
  };
  const broken = {
    modelType: variant('llava', { 'config.json': cfg((c) => (c.model_type = 'llava')) }),
    configNotJson: variant('config-not-json', { 'config.json': '{"model_type": "idefics3", ' }),
    noTokenizer: variant('no-tokenizer', { 'tokenizer.json': null }),
    headerGarbage: variant('header-garbage', { 'model.safetensors': (() => {
      const b = Buffer.from(testWeights());
      b.write('{"this is not json', 8, 'utf8');
      return b;
    })() }),
    headerTooLong: variant('header-length-lies', { 'model.safetensors': (() => {
      const b = Buffer.from(testWeights());
      b.writeBigUInt64LE(BigInt(b.length), 0);
      return b;
    })() }),
    truncated: variant('truncated', { 'model.safetensors': testWeights().subarray(0, 10_000_000) }),
    offsetsLie: variant('offsets-lie', { 'model.safetensors': withHeader((h) => {
      const t = firstTensor(h);
      h[t].data_offsets = [h[t].data_offsets[0] + 2, h[t].data_offsets[1] + 2];
    }) }),
    unknownDtype: variant('unknown-dtype', { 'model.safetensors': withHeader((h) => (h[firstTensor(h)].dtype = 'Q4_K')) }),
    intDtype: variant('int-dtype', { 'model.safetensors': withHeader((h) => (h[firstTensor(h)].dtype = 'I16')) }),
    shapeLies: variant('hidden-size-lies', { 'config.json': cfg((c) => (c.text_config.intermediate_size = 320)) }),
  };

  before(async () => {
    hub = await startHubServer({ repos, cors: true });
    rel = await openRel();
    await rel.eval('cache.clear');
  });
  after(async () => {
    await rel?.eval('cache.clear').catch(() => {});
    await rel?.close();
    await hub?.close();
    for (const v of variants) v.remove();
  });

  const load = (model: string, opts: Record<string, unknown> = {}) => rel.load('x', model, { baseUrl: hub.url, contextLength: 256, ...opts });
  const fullGets = (repo: string, file: string) => hub.requestsFor(repo, file).filter((r) => r.method === 'GET' && (r.range === null || !/^bytes=(0-7|8-\d+)$/.test(r.range)));

  test('first load downloads and caches every file; the estimate matches what the load allocates', T, async (t) => {
    const r = await load(REPO);
    assert.ok(r.ok, JSON.stringify(r.error));
    await rel.dispose('x');
    t.diagnostic(`load ${r.ms.toFixed(0)} ms, gpuBytes ${r.info!.gpuBytes}, estimate ${JSON.stringify(r.info!.memory)}`);
    const m = r.info!.memory!;
    // The estimate mirrors the weight loader; 10 % slack for buffer rounding (and to flag a layout change).
    const actualWeights = r.info!.gpuBytes - m.kvCache;
    assert.ok(Math.abs(m.weights - actualWeights) / actualWeights < 0.1, `estimated weights ${m.weights} vs allocated ${actualWeights}`);
    const list = await rel.eval<Array<{ model: string; baseUrl: string; files: Array<{ file: string; size: number; backend: string }> }>>('cache.list');
    const entry = list.find((e) => e.model === REPO && e.baseUrl === hub.url);
    assert.ok(entry, JSON.stringify(list));
    const files = Object.fromEntries(entry.files.map((f) => [f.file, f]));
    assert.equal(files['model.safetensors']?.size, testWeights().length);
    assert.equal(files['model.safetensors']?.backend, 'opfs', 'big files go to OPFS');
    assert.equal(files['config.json']?.backend, 'cache', 'small files go to the Cache API');
    assert.ok(files['tokenizer.json'] && files['preprocessor_config.json']);
  });

  test('second load with the server gone: everything from the cache, offline', T, async () => {
    const before = hub.requests.length;
    // Point a closed port at the same key? No: the key includes the base URL, so close this very server.
    const url = hub.url;
    await hub.close();
    try {
      const r = await rel.load('x', REPO, { baseUrl: url, contextLength: 256 });
      assert.ok(r.ok, JSON.stringify(r.error));
      await rel.dispose('x');
    } finally {
      // A new server for the rest (a new port, hence a new cache key for it).
      hub = await startHubServer({ repos, cors: true });
    }
    assert.ok(before > 0);
  });

  test('a corrupt cached block is evicted and the file downloaded again; the load still succeeds', T, async () => {
    assert.ok((await load(REPO)).ok);
    await rel.dispose('x');
    const gets0 = fullGets(REPO, 'model.safetensors').length;
    assert.equal(gets0, 1, 'one download so far');
    const backend = await rel.eval<string | null>('corruptCached', 'model.safetensors', 6_000_000);
    assert.equal(backend, 'opfs');
    const r = await load(REPO);
    assert.ok(r.ok, JSON.stringify(r.error));
    await rel.dispose('x');
    assert.equal(fullGets(REPO, 'model.safetensors').length, 2, 'downloaded again after the corrupt block');
    // Repaired: the next load reads the cache only.
    assert.ok((await load(REPO)).ok);
    await rel.dispose('x');
    assert.equal(fullGets(REPO, 'model.safetensors').length, 2, 'the repaired copy is used');
  });

  test('modelCache.delete(model) and clear() remove what was stored', T, async () => {
    let list = await rel.eval<Array<{ model: string }>>('cache.list');
    assert.ok(list.some((e) => e.model === REPO));
    const freed = await rel.eval<number>('cache.delete', REPO);
    assert.ok(freed >= testWeights().length, `freed ${freed}`);
    list = await rel.eval<Array<{ model: string }>>('cache.list');
    assert.ok(!list.some((e) => e.model === REPO), JSON.stringify(list));
    assert.ok((await load(REPO)).ok);
    await rel.dispose('x');
    await rel.eval('cache.clear');
    assert.deepEqual(await rel.eval('cache.list'), []);
    const est = await rel.eval<{ usage: number }>('estimate');
    assert.ok(est.usage < 5_000_000, `storage used after clear: ${est.usage}`);
  });

  test('storage quota too small: QuotaExceeded saying how much is needed, before the weights download', T, async () => {
    const cdp = await rel.page.context().newCDPSession(rel.page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: rel.origin, quotaSize: 8_000_000 });
    try {
      const r = await load(REPO);
      assert.equal(r.ok, false);
      assert.equal(r.error?.code, 'QuotaExceeded', JSON.stringify(r.error));
      assert.match(r.error!.message, /model\.safetensors needs 26\.6 MB/);
      assert.equal(r.error!.details?.needed, testWeights().length);
      assert.match(r.error!.hint ?? '', /modelCache|cache: false/);
      // cache: false loads anyway.
      const r2 = await load(REPO, { cache: false });
      assert.ok(r2.ok, JSON.stringify(r2.error));
      await rel.dispose('x');
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: rel.origin });
      await rel.eval('cache.clear');
    }
  });

  test('broken checkpoints fail with the right typed error and a message saying what is wrong', T, async (t) => {
    const cases: Array<[string, string, RegExp]> = [
      ['webvlm-test/does-not-exist', 'ModelNotFound', /config\.json not found/],
      [broken.modelType, 'UnsupportedModel', /model_type "llava" is not supported/],
      [broken.configNotJson, 'CorruptCheckpoint', /config\.json is not valid JSON/],
      [broken.noTokenizer, 'UnsupportedModel', /tokenizer\.json not found/],
      [broken.headerGarbage, 'CorruptCheckpoint', /header is not valid JSON/],
      [broken.headerTooLong, 'CorruptCheckpoint', /header length \d+ (exceeds|runs past)/],
      [broken.truncated, 'CorruptCheckpoint', /past the end of the 10000000-byte file/],
      [broken.offsetsLie, 'CorruptCheckpoint', /data_offsets/],
      [broken.unknownDtype, 'CorruptCheckpoint', /unknown dtype "Q4_K"/],
      [broken.intDtype, 'UnsupportedModel', /is I16; webvlm loads F32\/F16\/BF16 weights only/],
      [broken.shapeLies, 'CorruptCheckpoint', /shape/],
    ];
    for (const [repo, code, msg] of cases) {
      const r = await load(repo);
      t.diagnostic(`${repo}: ${r.error?.code}: ${r.error?.message} (${r.ms.toFixed(0)} ms)`);
      assert.equal(r.ok, false, repo);
      assert.equal(r.error?.name, 'WebVLMError', `${repo}: ${JSON.stringify(r.error)}`);
      assert.equal(r.error?.code, code, `${repo}: ${r.error?.message}`);
      assert.match(r.error!.message, msg, repo);
      assert.ok(r.error!.hint && r.error!.hint.length > 10, 'a hint says what to do');
    }
  });

  test('a connection dropped mid-file resumes with a Range request', T, async () => {
    await rel.eval('cache.clear');
    // Every response is cut after 5 MB (the small header range reads never reach that): the 26.5 MB download
    // only completes by resuming, several times.
    hub.setFault(REPO, 'model.safetensors', { dropAfter: { bytes: 5_000_000, times: Infinity } });
    try {
      const r = await load(REPO, { cache: false });
      assert.ok(r.ok, JSON.stringify(r.error));
      await rel.dispose('x');
      const resumed = fullGets(REPO, 'model.safetensors').filter((q) => q.range && Number(/bytes=(\d+)-/.exec(q.range)?.[1]) >= 4_000_000);
      assert.ok(resumed.length >= 1, JSON.stringify(hub.requestsFor(REPO, 'model.safetensors')));
    } finally {
      hub.setFault(REPO, 'model.safetensors', null);
    }
  });

  test('a slow server: abort stops the load promptly with Aborted, and nothing half-written is cached', T, async () => {
    await rel.eval('cache.clear');
    hub.setFault(REPO, 'model.safetensors', { bytesPerSecond: 1_000_000 });
    try {
      const r = await load(REPO, { abortAfterMs: 4000 });
      assert.equal(r.ok, false);
      assert.equal(r.error?.code, 'Aborted', JSON.stringify(r.error));
      assert.ok(r.ms < 4000 + 3000, `took ${r.ms} ms`);
      const list = await rel.eval<Array<{ files: Array<{ file: string }> }>>('cache.list');
      assert.ok(!list.some((e) => e.files.some((f) => f.file === 'model.safetensors')), JSON.stringify(list));
    } finally {
      hub.setFault(REPO, 'model.safetensors', null);
    }
  });

  test('GPU memory over the budget: OutOfMemory with the numbers, before the weights are downloaded', T, async () => {
    await rel.eval('cache.clear');
    const gets = fullGets(REPO, 'model.safetensors').length;
    const r = await load(REPO, { memoryBudget: 20_000_000 });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'OutOfMemory', JSON.stringify(r.error));
    assert.match(r.error!.message, /needs about [\d.]+ MiB of GPU memory \(weights [\d.]+ MiB \+ KV cache [\d.]+ MiB \(256 tokens\) \+ activations [\d.]+ MiB\), more than the budget of 19\.1 MiB/);
    const d = r.error!.details!;
    assert.equal(d.budget, 20_000_000);
    assert.ok((d.total as number) > 20_000_000 && (d.weights as number) > 0 && (d.kvCache as number) > 0);
    assert.equal(fullGets(REPO, 'model.safetensors').length, gets, 'only the header was read');
  });
});
