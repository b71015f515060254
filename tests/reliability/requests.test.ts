/**
 * Request order, abort and reset through the worker in Chromium (SwiftShader): an abort fired while the page still
 * prepares the images is not lost; five chats started together (the first with a 4096² canvas that takes longest to
 * prepare) are answered in call order; reset() and dispose() during a streaming answer neither change it nor throw.
 * Random-weight test checkpoint, greedy, few tokens; after each fault the next chat equals the fresh engine's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { openRel, quick, TEST_MODEL_DIR, userMessage, type Rel } from './helpers.ts';
import type { ChatOutcome } from './page.ts';

const REPO = 'webvlm-test/random-smolvlm';
const T = { timeout: 300_000 };

describe('requests through the worker in Chromium: abort while preparing, call order, reset and dispose mid-answer', () => {
  let rel: Rel;
  let hub: HubServer;
  const P = quick([userMessage('What is in the picture?', [{ kind: 'solid', w: 24, h: 16, rgb: [20, 160, 90] }])], { maxTokens: 10 });
  const Q = (i: number) => quick([userMessage(`Say something about ${i}.`)], { maxTokens: 3 });
  let refP: ChatOutcome;

  const expectSame = (got: ChatOutcome, ref: ChatOutcome, what: string) => {
    assert.ok(got.ok, `${what}: ${JSON.stringify(got.error)}`);
    assert.equal(got.text, ref.text, `${what}: text differs from the fresh engine's`);
    assert.equal(got.usage?.completionTokens, ref.usage?.completionTokens, what);
  };

  before(async () => {
    hub = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, cors: true });
    rel = await openRel();
    const r = await rel.load('e', REPO, { baseUrl: hub.url, contextLength: 128, cache: false });
    assert.ok(r.ok, JSON.stringify(r.error));
    refP = await rel.chat('e', P);
    assert.ok(refP.ok, JSON.stringify(refP.error));
    assert.equal(refP.usage?.completionTokens, 10);
  });
  after(async () => {
    await rel?.close();
    await hub?.close();
  });

  test('an abort fired while the page prepares the images is Aborted, with no text; the next chat is unchanged', T, async () => {
    for (const as of ['imagedata', 'canvas', 'png'] as const) {
      const plan = quick([userMessage('What is in the picture?', [{ kind: 'solid', w: 640, h: 480, rgb: [200, 30, 30], as }])], { maxTokens: 10, abortWhilePreparing: true });
      const r = await rel.chat('e', plan);
      assert.equal(r.ok, false, `${as}: the answer streamed although the request was aborted`);
      assert.equal(r.error?.code, 'Aborted', `${as}: ${JSON.stringify(r.error)}`);
      assert.equal(r.deltas, 0, as);
    }
    await rel.eval('reset', 'e');
    expectSame(await rel.chat('e', P), refP, 'after the aborts');
  });

  test('five chats started together are answered in call order, the first with a 4096² image', T, async (t) => {
    const first = quick([userMessage('Describe.', [{ kind: 'solid', w: 4096, h: 4096, rgb: [10, 20, 200], as: 'canvas' }])], { maxTokens: 2 });
    const all = await rel.eval<ChatOutcome[]>('chatMany', 'e', [first, Q(1), Q(2), Q(3), Q(4)]);
    all.forEach((r, i) => assert.ok(r.ok, `chat ${i}: ${JSON.stringify(r.error)}`));
    const firstDelta = all.map((r) => Math.min(...r.times));
    const lastDelta = all.map((r) => Math.max(...r.times));
    t.diagnostic(`first deltas (ms after the first's): ${firstDelta.map((x) => (x - firstDelta[0]).toFixed(0)).join(', ')}`);
    for (let i = 1; i < all.length; i++) {
      assert.ok(firstDelta[i] > lastDelta[i - 1], `chat ${i} began before chat ${i - 1} ended (order ${firstDelta.map((x, k) => [x, k]).sort((a, b) => a[0] - b[0]).map((x) => x[1]).join(', ')})`);
    }
  });

  test('reset() during a streaming answer waits for it: the answer equals the fresh one, then the cache is empty', T, async () => {
    const r = await rel.chat('e', { ...P, resetAfterDeltas: 1 });
    expectSame(r, refP, 'the answer streaming while reset() was called');
    assert.equal(r.sideError, undefined, JSON.stringify(r.sideError));
    assert.ok(r.resetAt !== undefined && r.resetAt >= Math.max(...r.times), `reset() settled after the last delta (reset ${r.resetAt}, deltas ${r.times.join(', ')})`);
    const next = await rel.chat('e', P);
    expectSame(next, refP, 'the chat after the reset');
    assert.equal(next.usage?.cachedTokens, 0, 'the reset did forget the cache');
  });

  test('dispose() during a streaming answer ends it cleanly (abort or Disposed), and resolves', T, async () => {
    const load = await rel.load('d', REPO, { baseUrl: hub.url, contextLength: 128, cache: false });
    assert.ok(load.ok, JSON.stringify(load.error));
    const r = await rel.chat('d', { ...P, maxTokens: 40, disposeAfterDeltas: 1 });
    assert.equal(r.sideError, undefined, `dispose() threw: ${JSON.stringify(r.sideError)}`);
    assert.ok(r.disposedAt !== undefined, 'dispose() settled');
    if (r.ok) assert.equal(r.finishReason, 'abort');
    else assert.ok(['Disposed', 'Aborted'].includes(r.error?.code ?? ''), JSON.stringify(r.error));
    const after = await rel.chat('d', P);
    assert.equal(after.error?.code, 'Disposed');
    expectSame(await rel.chat('e', P), refP, 'the other engine is unaffected');
  });
});
