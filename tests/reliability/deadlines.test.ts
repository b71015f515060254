/**
 * Deadlines on every request (Node, local hub server with fault injection): a server that accepts a request and
 * never answers, or answers and then stops sending, must not hang a load. HEAD, the model-info API, range reads,
 * streamed downloads and image URLs each get a response-headers deadline and a body-idle deadline; timeouts are
 * retried like network errors and end in a typed error naming the file and the time waited; the caller's abort
 * stays `Aborted`, at once. Small deadlines (300 ms) keep each case well under a few seconds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { HUB_DEFAULTS, HubSource, type HubOptions } from '../../src/engine/hub.ts';
import { readAll } from '../../src/engine/file-source.ts';
import { decodeImage, IMAGE_FETCH_DEFAULTS } from '../../src/worker/image-decode.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { seededBytes } from '../helpers/safetensors-file.ts';
import { expectCode } from '../helpers/expect-code.ts';

const REPO = 'test-org/deadlines';
const SIZE = 300_007;
const BLOB = seededBytes(SIZE, 5);
const SHA = createHash('sha256').update(BLOB).digest('hex');
const MS = 300;
/** Each case is bounded: on code without deadlines it fails here instead of hanging. */
const T = { timeout: 20_000 };

let dir: string;
let hub: HubServer;
const FAST: HubOptions = { retryDelayMs: 5, maxRetryDelayMs: 20, retries: 1, headersTimeoutMs: MS, stallTimeoutMs: MS, apiTimeoutMs: MS };

/** A source whose fetch records each request's signal (to check that timed-out requests are really cancelled). */
function source(opts: HubOptions = {}) {
  const signals: AbortSignal[] = [];
  const src = new HubSource(REPO, {
    baseUrl: hub.url, ...FAST, ...opts,
    fetch: (input, init) => {
      if (init?.signal) signals.push(init.signal);
      return fetch(input, init);
    },
  });
  return { src, signals };
}


const elapsed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
};

const tick = () => new Promise((r) => setTimeout(r, 50));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webvlm-deadlines-'));
  await writeFile(join(dir, 'blob.bin'), BLOB);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'idefics3' }));
  await writeFile(join(dir, 'image.png'), seededBytes(5000, 9));
  hub = await startHubServer({ repos: { [REPO]: dir } });
});

after(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

describe('hub requests have deadlines', () => {
  test('defaults: 30 s for headers and body idle, 5 s for the optional model-info API', () => {
    assert.deepEqual(HUB_DEFAULTS, { headersTimeoutMs: 30_000, stallTimeoutMs: 30_000, apiTimeoutMs: 5_000 });
  });

  test('a HEAD that never answers: retried, then DownloadFailed naming the file and the wait; the requests are cancelled', T, async () => {
    hub.setFault(REPO, 'config.json', { stallHeaders: { method: 'HEAD' } });
    try {
      const { src, signals } = source({ useApi: false });
      const [err, ms] = await elapsed(() => expectCode(src.open('config.json'), 'DownloadFailed', /config\.json .*failed after 2 attempts: no response headers within 300 ms/));
      assert.equal(err.details?.file, 'config.json');
      assert.equal(err.details?.timeoutMs, MS);
      assert.equal(err.details?.attempts, 2);
      assert.ok(ms >= 2 * MS && ms < 3000, `took ${ms.toFixed(0)} ms`);
      assert.equal(signals.length, 2);
      assert.ok(signals.every((s) => s.aborted), 'each timed-out fetch was aborted');
      await tick();
      const heads = hub.requestsFor(REPO, 'config.json').filter((r) => r.method === 'HEAD').slice(-2);
      assert.ok(heads.every((r) => r.aborted), `the server saw the connections closed: ${JSON.stringify(heads)}`);
    } finally {
      hub.setFault(REPO, 'config.json', null);
    }
    // One stalled HEAD: the retry gets through.
    hub.setFault(REPO, 'config.json', { stallHeaders: { method: 'HEAD', times: 1 } });
    try {
      const h = await source({ useApi: false }).src.open('config.json');
      assert.ok(h);
      assert.equal(new TextDecoder().decode(await readAll(h)), JSON.stringify({ model_type: 'idefics3' }));
    } finally {
      hub.setFault(REPO, 'config.json', null);
    }
  });

  test('the model-info API stalling (headers or body) costs apiTimeoutMs once, and loading goes on without it', T, async () => {
    for (const fault of [{ stallHeaders: {} }, { hangAfter: { bytes: 20, times: Infinity } }]) {
      hub.setFault(REPO, 'api', fault);
      try {
        // The API gets its own short deadline, not the (long) one for files.
        const { src } = source({ headersTimeoutMs: 10_000, stallTimeoutMs: 10_000 });
        const [h, ms] = await elapsed(() => src.open('blob.bin'));
        assert.ok(ms < 2500, `${JSON.stringify(fault)}: open took ${ms.toFixed(0)} ms`);
        assert.equal(h?.size, SIZE, 'size from the headers');
        assert.equal(h?.sha256, SHA, 'sha256 from x-linked-etag');
        const [h2, ms2] = await elapsed(() => src.open('config.json'));
        assert.ok(h2 && ms2 < 1000, `the API is not asked again: ${ms2.toFixed(0)} ms`);
        assert.equal((await readAll(h!)).length, SIZE);
      } finally {
        hub.setFault(REPO, 'api', null);
      }
    }
  });

  test('range(): headers or body that never come are retried, then DownloadFailed naming the file and the wait', T, async () => {
    const { src } = source();
    const h = (await src.open('blob.bin'))!;
    const want = BLOB.subarray(8, 4008);
    hub.setFault(REPO, 'blob.bin', { stallHeaders: { method: 'GET', rangeOnly: true, times: 1 } });
    assert.deepEqual(await h.range(8, 4008), want);
    hub.setFault(REPO, 'blob.bin', { hangAfter: { bytes: 0, times: 1 } });
    assert.deepEqual(await h.range(8, 4008), want);

    hub.setFault(REPO, 'blob.bin', { stallHeaders: { method: 'GET', rangeOnly: true } });
    let err = await expectCode(h.range(8, 4008), 'DownloadFailed', /blob\.bin .*after 2 attempts: no response headers within 300 ms/);
    assert.equal(err.details?.file, 'blob.bin');
    assert.equal(err.details?.timeoutMs, MS);
    hub.setFault(REPO, 'blob.bin', { hangAfter: { bytes: 0, times: Infinity } });
    err = await expectCode(h.range(8, 4008), 'DownloadFailed', /blob\.bin .*after 2 attempts: no data for 300 ms/);
    assert.equal(err.details?.timeoutMs, MS);
    hub.setFault(REPO, 'blob.bin', null);
  });

  test('a streamed download whose GET never answers is retried; always stalled: DownloadFailed with the wait', T, async () => {
    const { src } = source();
    const h = (await src.open('blob.bin'))!;
    hub.setFault(REPO, 'blob.bin', { stallHeaders: { method: 'GET', times: 1 } });
    assert.equal((await readAll(h)).length, SIZE);
    hub.setFault(REPO, 'blob.bin', { stallHeaders: { method: 'GET' } });
    const err = await expectCode(readAll(h), 'DownloadFailed', /blob\.bin .*after 2 attempts: no response headers within 300 ms/);
    assert.equal(err.details?.file, 'blob.bin');
    assert.equal(err.details?.timeoutMs, MS);
    hub.setFault(REPO, 'blob.bin', null);
  });

  test("the caller's abort during a stalled request is Aborted at once, not a timeout", T, async () => {
    const long: HubOptions = { headersTimeoutMs: 10_000, stallTimeoutMs: 10_000, apiTimeoutMs: 10_000 };
    const abortIn = (ms: number) => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), ms);
      return ac.signal;
    };
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['HEAD', async () => {
        hub.setFault(REPO, 'config.json', { stallHeaders: { method: 'HEAD' } });
        return source({ ...long, useApi: false }).src.open('config.json', { signal: abortIn(100) });
      }],
      ['API', async () => {
        hub.setFault(REPO, 'api', { stallHeaders: {} });
        return source(long).src.open('config.json', { signal: abortIn(100) });
      }],
      ['range', async () => {
        const h = (await source(long).src.open('blob.bin'))!;
        hub.setFault(REPO, 'blob.bin', { hangAfter: { bytes: 0, times: Infinity } });
        return h.range(0, 8, { signal: abortIn(100) });
      }],
      ['stream', async () => {
        const h = (await source(long).src.open('blob.bin'))!;
        hub.setFault(REPO, 'blob.bin', { stallHeaders: { method: 'GET' } });
        return readAll(h, { signal: abortIn(100) });
      }],
    ];
    for (const [what, run] of cases) {
      try {
        const [, ms] = await elapsed(() => expectCode(run(), 'Aborted'));
        assert.ok(ms < 1500, `${what}: abort took ${ms.toFixed(0)} ms`);
      } finally {
        for (const f of ['config.json', 'blob.bin', 'api']) hub.setFault(REPO, f, null);
      }
    }
  });
});

describe('image URLs have deadlines', () => {
  const url = () => `${hub.url}/${REPO}/resolve/main/image.png`;
  const fast = { headersTimeoutMs: MS, idleTimeoutMs: MS };

  test('defaults: 30 s for headers and body idle', () => {
    assert.deepEqual({ ...IMAGE_FETCH_DEFAULTS }, { headersTimeoutMs: 30_000, idleTimeoutMs: 30_000 });
  });

  test('an image URL that never answers, or stops sending: ImageDecodeFailed naming the URL and the wait', T, async () => {
    for (const [fault, msg] of [
      [{ stallHeaders: {} }, /no response headers within 300 ms/],
      [{ hangAfter: { bytes: 100, times: Infinity } }, /no data for 300 ms/],
    ] as const) {
      hub.setFault(REPO, 'image.png', fault);
      try {
        const [err, ms] = await elapsed(() => expectCode(decodeImage(url(), undefined, fast), 'ImageDecodeFailed', msg));
        assert.ok(err.message.includes(url()), err.message);
        assert.equal(err.details?.url, url());
        assert.equal(err.details?.timeoutMs, MS);
        assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
      } finally {
        hub.setFault(REPO, 'image.png', null);
      }
    }
    // A slow but steady body is not cut off: it gets to decoding (which these junk bytes fail, differently).
    hub.setFault(REPO, 'image.png', { bytesPerSecond: 8000 });
    try {
      const err = await expectCode(decodeImage(url(), undefined, fast), 'ImageDecodeFailed');
      assert.doesNotMatch(err.message, /within|no data/);
    } finally {
      hub.setFault(REPO, 'image.png', null);
    }
  });

  test('an abort while an image URL is pending is Aborted, at once', T, async () => {
    for (const fault of [{ stallHeaders: {} }, { hangAfter: { bytes: 100, times: Infinity } }]) {
      hub.setFault(REPO, 'image.png', fault);
      try {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 100);
        const [, ms] = await elapsed(() => expectCode(decodeImage(url(), ac.signal, { headersTimeoutMs: 10_000, idleTimeoutMs: 10_000 }), 'Aborted'));
        assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
      } finally {
        hub.setFault(REPO, 'image.png', null);
      }
    }
  });
});
