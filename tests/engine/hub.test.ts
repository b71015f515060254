import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { HubSource, hubUrl, type HubOptions } from '../../src/engine/hub.ts';
import { readAll, readJson, type LoadProgressEvent } from '../../src/engine/file-source.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { seededBytes } from '../helpers/safetensors-file.ts';
import { expectCode } from '../helpers/expect-code.ts';

const REPO = 'test-org/blobs';
const SIZE = 1_000_003; // not a multiple of any chunk size
const BLOB = seededBytes(SIZE, 11);
const SHA = createHash('sha256').update(BLOB).digest('hex');

let dir: string;
let hub: HubServer;
/** Fast retries so fault tests take milliseconds, not seconds. */
const FAST: HubOptions = { retryDelayMs: 5, maxRetryDelayMs: 20, stallTimeoutMs: 2000 };
const source = (opts: HubOptions = {}) => new HubSource(REPO, { baseUrl: hub.url, ...FAST, ...opts });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webvlm-hub-'));
  await writeFile(join(dir, 'blob.bin'), BLOB);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'idefics3' }));
  await writeFile(join(dir, 'broken.json'), '{"a": ');
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'x.txt'), 'nested');
  hub = await startHubServer({ repos: { [REPO]: dir }, revisions: ['main', 'refs/pr/1'] });
});

after(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});


async function download(file = 'blob.bin', opts: HubOptions = {}, events?: LoadProgressEvent[]): Promise<Uint8Array> {
  const h = await source(opts).open(file);
  assert.ok(h, `${file} exists`);
  return readAll(h, { onProgress: events ? (e) => events.push(e) : undefined });
}

/** Byte equality without deepEqual's per-element cost. */
function sameBytes(got: Uint8Array, want: Uint8Array): void {
  assert.equal(got.length, want.length, 'length');
  assert.ok(Buffer.from(got.buffer, got.byteOffset, got.length).equals(want), 'bytes differ');
}

const gets = (file = 'blob.bin') => hub.requestsFor(REPO, file).filter((r) => r.method === 'GET');

test('hubUrl: default base and revision, encoding, bad ids', () => {
  assert.equal(hubUrl('HuggingFaceTB/SmolVLM-256M-Instruct', 'config.json'), 'https://huggingface.co/HuggingFaceTB/SmolVLM-256M-Instruct/resolve/main/config.json');
  assert.equal(hubUrl('o/m', 'sub dir/a+b.json', { revision: 'refs/pr/1', baseUrl: 'http://h:1/mirror/' }), 'http://h:1/mirror/o/m/resolve/refs%2Fpr%2F1/sub%20dir/a%2Bb.json');
  for (const bad of ['', '/o/m', 'o/../m', 'o//m', 'o/m/']) {
    assert.throws(() => hubUrl(bad, 'f'), (e) => isWebVLMError(e, 'InvalidArgument'), bad);
  }
  assert.throws(() => hubUrl('o/m', '../secret'), (e) => isWebVLMError(e, 'InvalidArgument'));
});

test('open + stream: exact bytes, size and sha256 (from the API and from headers), progress events', async () => {
  hub.setFault(REPO, 'blob.bin', null);
  for (const useApi of [true, false]) {
    const h = await source({ useApi }).open('blob.bin');
    assert.equal(h?.size, SIZE);
    assert.equal(h?.sha256, SHA);
    const events: LoadProgressEvent[] = [];
    const got = await readAll(h!, { onProgress: (e) => events.push(e) });
    sameBytes(got, BLOB);
    assert.ok(events.length >= 2);
    assert.ok(events.every((e) => e.phase === 'download' && e.file === 'blob.bin' && e.total === SIZE));
    assert.deepEqual(events.map((e) => e.loaded), [...events.map((e) => e.loaded)].sort((a, b) => a - b));
    assert.equal(events[0].loaded, 0);
    assert.equal(events.at(-1)!.loaded, SIZE);
  }
  assert.equal(await source().open('missing.bin'), null);
  assert.deepEqual(await readJson(await source().open('config.json') as never), { model_type: 'idefics3' });
  assert.equal(new TextDecoder().decode(await download('sub/x.txt')), 'nested');
  const pr = new HubSource(REPO, { baseUrl: hub.url, revision: 'refs/pr/1' });
  assert.ok(await pr.open('config.json'));
  assert.equal(await new HubSource(REPO, { baseUrl: hub.url, revision: 'nope' }).open('config.json'), null);
  await expectCode(readJson((await source().open('broken.json'))!), 'CorruptCheckpoint', /broken\.json is not valid JSON/);
});

test('resume: a dropped connection continues with a Range request', async () => {
  hub.setFault(REPO, 'blob.bin', { dropAfter: { bytes: 300_000, times: 1 } });
  const before = gets().length;
  sameBytes(await download(), BLOB);
  const reqs = gets().slice(before);
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].range, null);
  assert.match(reqs[1].range ?? '', /^bytes=\d+-$/);
  assert.equal(reqs[1].status, 206);
  const resumedAt = Number(/=(\d+)-/.exec(reqs[1].range!)![1]);
  assert.ok(resumedAt > 0 && resumedAt <= 300_000, `resumed at ${resumedAt}`);
});

test('resume: a connection dropping every 100 kB still completes (progress resets the retry count)', async () => {
  hub.setFault(REPO, 'blob.bin', { dropAfter: { bytes: 100_000, times: Infinity } });
  const before = gets().length;
  sameBytes(await download('blob.bin', { retries: 2 }), BLOB);
  assert.ok(gets().length - before >= 10);
});

test('resume: a server that ignores Range sends everything again and we skip what we have', async () => {
  hub.setFault(REPO, 'blob.bin', { dropAfter: { bytes: 400_000, times: 1 }, ignoreRange: true });
  const before = gets().length;
  sameBytes(await download(), BLOB);
  const reqs = gets().slice(before);
  assert.equal(reqs.length, 2);
  assert.equal(reqs[1].status, 200);
});

test('resume: a stalled connection is abandoned after stallTimeoutMs and resumed', async () => {
  hub.setFault(REPO, 'blob.bin', { hangAfter: { bytes: 200_000, times: 1 } });
  const t0 = performance.now();
  sameBytes(await download('blob.bin', { stallTimeoutMs: 150 }), BLOB);
  assert.ok(performance.now() - t0 < 3000);
});

test('retries: 500s then success; Retry-After honoured; exhausted retries are DownloadFailed', async () => {
  hub.setFault(REPO, 'blob.bin', { fail: { count: 3 } });
  sameBytes(await download('blob.bin', { retries: 3 }), BLOB);

  hub.setFault(REPO, 'blob.bin', { fail: { count: 1, status: 503, retryAfter: 0 } });
  sameBytes(await download(), BLOB);

  hub.setFault(REPO, 'blob.bin', { fail: { count: 100 } });
  const before = hub.requestsFor(REPO, 'blob.bin').length;
  await expectCode(source({ retries: 2 }).open('blob.bin'), 'DownloadFailed', /after 3 attempts: HTTP 500/);
  assert.equal(hub.requestsFor(REPO, 'blob.bin').length - before, 3);

  // Failing mid-download (after HEAD succeeded): the GETs are retried, then DownloadFailed.
  hub.setFault(REPO, 'blob.bin', null);
  const h = (await source({ retries: 2 }).open('blob.bin'))!;
  hub.setFault(REPO, 'blob.bin', { fail: { count: 100, status: 502 } });
  await expectCode(readAll(h), 'DownloadFailed', /after 3 attempts: HTTP 502/);
});

test('integrity: wrong declared length and wrong bytes are CorruptCheckpoint', async () => {
  hub.setFault(REPO, 'blob.bin', { declaredSize: SIZE + 10 });
  await expectCode(download(), 'CorruptCheckpoint', /blob\.bin: the server has no bytes from 1000003 on, but 1000013 were expected/);
  hub.setFault(REPO, 'blob.bin', { declaredSize: SIZE - 10 });
  await expectCode(download(), 'CorruptCheckpoint', /more than the expected 999993 bytes/);
  hub.setFault(REPO, 'blob.bin', { corruptByte: 123_456 });
  await expectCode(download(), 'CorruptCheckpoint', new RegExp(`sha256 [0-9a-f]{64} does not match the expected ${SHA}`));
  // Without hash verification the flipped byte gets through (what verifyHash: false means).
  const got = await download('blob.bin', { verifyHash: false });
  assert.equal(got[123_456], BLOB[123_456] ^ 0xff);
  // No hash offered anywhere: size-checked only.
  hub.setFault(REPO, 'blob.bin', { noHash: true });
  const h = await source({ useApi: false }).open('blob.bin');
  assert.equal(h?.sha256, null);
  sameBytes(await readAll(h!), BLOB);
});

test('a server without HEAD: the size comes from a one-byte Range probe', async () => {
  hub.setFault(REPO, 'blob.bin', { noHead: true, noHash: true });
  const h = await source({ useApi: false }).open('blob.bin');
  assert.equal(h?.size, SIZE);
  sameBytes(await readAll(h!), BLOB);
});

test('range(): exact slices, with retries; invalid ranges are InvalidArgument', async () => {
  hub.setFault(REPO, 'blob.bin', { fail: { count: 2 } });
  const h = (await source().open('blob.bin'))!;
  assert.deepEqual(await h.range(8, 20_008), BLOB.subarray(8, 20_008));
  assert.deepEqual(await h.range(SIZE - 5, SIZE), BLOB.subarray(SIZE - 5));
  assert.equal((await h.range(7, 7)).length, 0);
  await expectCode(h.range(10, SIZE + 1), 'InvalidArgument');
  await expectCode(h.range(10, 5), 'InvalidArgument');
});

test('abort: mid-download, during backoff, and before open', async () => {
  hub.setFault(REPO, 'blob.bin', { bytesPerSecond: 200_000 });
  const ac = new AbortController();
  const h = (await source().open('blob.bin'))!;
  const t0 = performance.now();
  setTimeout(() => ac.abort(), 100);
  await expectCode(readAll(h, { signal: ac.signal }), 'Aborted', /Downloading blob\.bin was aborted/);
  assert.ok(performance.now() - t0 < 1500, 'abort is prompt');

  hub.setFault(REPO, 'blob.bin', { fail: { count: 100 } });
  const ac2 = new AbortController();
  setTimeout(() => ac2.abort(), 50);
  await expectCode(source({ retryDelayMs: 10_000, maxRetryDelayMs: 10_000 }).open('blob.bin', { signal: ac2.signal }), 'Aborted');

  const ac3 = new AbortController();
  ac3.abort();
  await expectCode(source({ signal: ac3.signal }).open('blob.bin'), 'Aborted');
  hub.setFault(REPO, 'blob.bin', null);
});

test('cancelling the stream stops the download', async () => {
  hub.setFault(REPO, 'blob.bin', { bytesPerSecond: 400_000 });
  const h = (await source().open('blob.bin'))!;
  const reader = h.stream().getReader();
  const first = await reader.read();
  assert.ok(!first.done && first.value.length > 0);
  await reader.cancel();
  hub.setFault(REPO, 'blob.bin', null);
});

test('401/403 are ModelNotFound (private or gated); a non-hub base URL is DownloadFailed after retries', async () => {
  hub.setFault(REPO, 'config.json', { fail: { count: 1, status: 401 } });
  await expectCode(source().open('config.json'), 'ModelNotFound', /access to config\.json denied \(HTTP 401\)/);
  hub.setFault(REPO, 'config.json', null);
  // Nothing listens on port 9 of loopback: connection refused, retried, then DownloadFailed.
  await expectCode(new HubSource(REPO, { baseUrl: 'http://127.0.0.1:9', ...FAST, retries: 1 }).open('config.json'), 'DownloadFailed', /after 2 attempts/);
});
