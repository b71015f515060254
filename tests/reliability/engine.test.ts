/**
 * A loaded engine under stress, through the public API in Chromium (SwiftShader): abort (before and during
 * generation; the KV cache stays consistent), two chats at once (queued, not interleaved), a prompt over the context
 * window, bad images, device loss mid-generation (recovered from the cache on the next call), and a worker that
 * crashes or is terminated (pending requests reject, never hang). Random-weight test checkpoint, tiny images at
 * `detail: 'low'` (one 64 px frame), a few greedy tokens. The first chat pays SwiftShader's pipeline compilation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { animatedGif, openRel, pngHeader, quick, TEST_MODEL_DIR, userMessage, type Rel } from './helpers.ts';
import type { ChatOutcome, ChatPlan } from './page.ts';

const REPO = 'webvlm-test/random-smolvlm';
const T = { timeout: 300_000 };
const CONTEXT = 128;

describe('engine reliability in Chromium: abort, queueing, overflow, bad images, device loss, worker loss', () => {
  let rel: Rel;
  let hub: HubServer;
  /** Prompt P (image + text) and Q (text only), and their outputs on a fresh engine. */
  const P = quick([userMessage('What is in the picture?', [{ kind: 'solid', w: 24, h: 16, rgb: [20, 160, 90] }])], { maxTokens: 10 });
  const Q = quick([userMessage('Say something.')], { maxTokens: 8 });
  let refP: ChatOutcome;
  let refQ: ChatOutcome;

  const expectSame = (got: ChatOutcome, ref: ChatOutcome, what: string) => {
    assert.ok(got.ok, `${what}: ${JSON.stringify(got.error)}`);
    assert.equal(got.text, ref.text, `${what}: text differs from the fresh engine's`);
    assert.equal(got.usage?.completionTokens, ref.usage?.completionTokens, what);
  };

  before(async () => {
    hub = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, cors: true });
    rel = await openRel();
    await rel.eval('cache.clear');
    const r = await rel.load('e', REPO, { baseUrl: hub.url, contextLength: CONTEXT });
    assert.ok(r.ok, JSON.stringify(r.error));
  });
  after(async () => {
    await rel?.eval('cache.clear').catch(() => {});
    await rel?.close();
    await hub?.close();
  });

  test('reference outputs on the fresh engine', T, async (t) => {
    refP = await rel.chat('e', P);
    refQ = await rel.chat('e', Q);
    t.diagnostic(`P: ${JSON.stringify(refP.text)} in ${refP.ms.toFixed(0)} ms; Q: ${JSON.stringify(refQ.text)} in ${refQ.ms.toFixed(0)} ms`);
    assert.ok(refP.ok && refQ.ok, JSON.stringify([refP.error, refQ.error]));
    assert.equal(refP.usage?.completionTokens, 10);
    assert.equal((refP.usage?.images as unknown[]).length, 1);
  });

  test('two chats at once are queued: both complete, outputs correct and not interleaved', T, async () => {
    const [a, b] = await rel.eval<ChatOutcome[]>('chatPair', 'e', P, Q);
    expectSame(a, refP, 'first of the pair');
    expectSame(b, refQ, 'second of the pair');
    const [aEnd, bStart] = [Math.max(...a.times), Math.min(...b.times)];
    const [bEnd, aStart] = [Math.max(...b.times), Math.min(...a.times)];
    assert.ok(aEnd <= bStart || bEnd <= aStart, `deltas interleave: A ${aStart}–${aEnd}, B ${bStart}–${bEnd}`);
  });

  test('abort during decoding: stops within a forward pass, finishReason abort; the next request matches a fresh engine', T, async () => {
    const r = await rel.chat('e', { ...P, maxTokens: 40, abortAfterDeltas: 1 });
    assert.ok(r.ok, JSON.stringify(r.error));
    assert.equal(r.finishReason, 'abort');
    // The abort is seen after the token that is being computed when it arrives: at most a couple more tokens.
    assert.ok((r.usage!.completionTokens as number) <= 6, `generated ${r.usage!.completionTokens} tokens after the abort`);
    const again = await rel.chat('e', P);
    expectSame(again, refP, 'after an abort');
    assert.ok((again.usage!.cachedTokens as number) > 0, 'the KV cache left by the aborted request was reused');
  });

  test('abort during image encoding / prefill: Aborted error; the engine stays usable', T, async (t) => {
    // The abort is fired by the worker as the request enters the phase (a timer raced a fast machine and lost).
    for (const phase of ['encode', 'prefill'] as const) {
      const r = await rel.chat('e', { ...P, messages: [userMessage('Another picture.', [{ kind: 'solid', w: 20, h: 30, rgb: [1, 2, 250] }])], abortAtPhase: phase });
      t.diagnostic(`${phase}: ${JSON.stringify(r.error)}`);
      assert.equal(r.ok, false, `${phase}: the request finished although it was aborted`);
      assert.equal(r.error?.code, 'Aborted', JSON.stringify(r.error));
      assert.match(r.error?.message ?? '', phase === 'encode' ? /image encoding/ : /before the prefill/);
      assert.equal(r.deltas, 0);
      expectSame(await rel.chat('e', Q), refQ, `after an abort at ${phase}`);
    }
  });

  test('a prompt longer than the context window: ContextOverflow with the numbers; the engine still works', T, async () => {
    const r = await rel.chat('e', quick([userMessage('lorem ipsum '.repeat(200))]));
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'ContextOverflow', JSON.stringify(r.error));
    assert.equal(r.error?.details?.contextLength, CONTEXT);
    assert.ok((r.error?.details?.promptTokens as number) > CONTEXT);
    expectSame(await rel.chat('e', P), refP, 'after ContextOverflow');
  });

  test('bad images fail fast with InvalidImage / ImageDecodeFailed; odd but valid ones work', T, async (t) => {
    const bad: Array<[string, ChatPlan, string]> = [
      ['0×0 canvas', quick([userMessage('?', [{ kind: 'solid', w: 0, h: 0, as: 'canvas' }])]), 'InvalidImage'],
      ['PNG claiming 0×0', quick([userMessage('?', [{ kind: 'bytes', base64: pngHeader(0, 0), type: 'image/png' }])]), 'InvalidImage'],
      ['PNG claiming 20000×20000', quick([userMessage('?', [{ kind: 'bytes', base64: pngHeader(20000, 20000), type: 'image/png' }])]), 'InvalidImage'],
      ['text blob', quick([userMessage('?', [{ kind: 'bytes', base64: Buffer.from('not an image at all').toString('base64'), type: 'text/plain' }])]), 'ImageDecodeFailed'],
      ['truncated PNG', quick([userMessage('?', [{ kind: 'bytes', base64: pngHeader(16, 16), type: 'image/png' }])]), 'ImageDecodeFailed'],
    ];
    for (const [what, plan, code] of bad) {
      const r = await rel.chat('e', plan);
      t.diagnostic(`${what}: ${r.error?.code} ${r.error?.message} (${r.ms.toFixed(0)} ms)`);
      assert.equal(r.ok, false, what);
      assert.equal(r.error?.code, code, `${what}: ${JSON.stringify(r.error)}`);
      assert.ok(r.ms < 5000, `${what} took ${r.ms} ms`);
    }
    // A 20000×20000 canvas never reaches the worker: refused on the main thread before any pixel is copied.
    const huge = await rel.chat('e', quick([userMessage('?', [{ kind: 'solid', w: 20000, h: 20000, as: 'canvas' }])]));
    assert.equal(huge.error?.code, 'InvalidImage', JSON.stringify(huge.error));
    assert.match(huge.error!.message, /20000×20000 \(400 MP\)/);

    // 1×10000: extreme but valid.
    const thin = await rel.chat('e', quick([userMessage('?', [{ kind: 'solid', w: 1, h: 10000 }])], { maxTokens: 2 }));
    t.diagnostic(`1×10000: ${thin.ok ? `ok, ${JSON.stringify(thin.usage?.images)}` : JSON.stringify(thin.error)}`);
    assert.ok(thin.ok, JSON.stringify(thin.error));

    // Animated GIF: the first frame is used.
    const gif = animatedGif([250, 10, 10], [10, 10, 250]);
    const decoded = await rel.eval<{ ok: boolean; width: number; height: number; first: number[] }>('decode', { kind: 'bytes', base64: gif, type: 'image/gif' });
    assert.ok(decoded.ok, JSON.stringify(decoded));
    assert.deepEqual([decoded.width, decoded.height], [4, 4]);
    assert.deepEqual(decoded.first, [250, 10, 10, 255], 'first frame');
    const g = await rel.chat('e', quick([userMessage('?', [{ kind: 'bytes', base64: gif, type: 'image/gif' }])], { maxTokens: 2 }));
    assert.ok(g.ok, JSON.stringify(g.error));

    expectSame(await rel.chat('e', P), refP, 'after bad images');
  });

  test('device lost mid-generation: that request fails with DeviceLost; the next one re-creates the device, reloads from the cache and matches a fresh engine', T, async (t) => {
    const requests = hub.requests.length;
    const r = await rel.chat('e', { ...P, maxTokens: 90, loseDeviceAfterDeltas: 1 });
    t.diagnostic(`lost: ${JSON.stringify(r.error ?? r.finishReason)} after ${r.deltas} deltas`);
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'DeviceLost', JSON.stringify(r.error));
    assert.match(r.error!.hint ?? '', /re-creates it and reloads/);
    const again = await rel.chat('e', P);
    t.diagnostic(`after the reload: ${again.ms.toFixed(0)} ms`);
    expectSame(again, refP, 'after device loss');
    assert.equal(again.usage?.cachedTokens, 0, 'a new device starts with an empty KV cache');
    assert.equal(hub.requests.length, requests, 'the model was reloaded from the browser cache, not the network');
    expectSame(await rel.chat('e', Q), refQ, 'the conversation goes on');
  });

  test('the worker crashes mid-generation: the pending request rejects with WorkerTerminated, later calls too', T, async () => {
    const r = await rel.chat('e', { ...P, maxTokens: 90, crashAfterDeltas: 1 });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'WorkerTerminated', JSON.stringify(r.error));
    const later = await rel.chat('e', Q);
    assert.equal(later.error?.code, 'WorkerTerminated');
    assert.ok(later.ms < 1000, `later call took ${later.ms} ms`);
    const plan = await rel.eval<{ ok: boolean; error?: { code?: string } }>('plan', 'e', 100, 100);
    assert.equal(plan.error?.code, 'WorkerTerminated');
    await rel.dispose('e');
  });

  test('the worker is terminated from outside during a request: it rejects with WorkerTerminated, no hang', T, async () => {
    const l = await rel.load('k', REPO, { baseUrl: hub.url, contextLength: CONTEXT });
    assert.ok(l.ok, JSON.stringify(l.error));
    // At the first delta of a long answer (a fixed delay raced fast machines, where the whole answer fits in it).
    const r = await rel.chat('k', { ...P, maxTokens: 90, terminateAfterDeltas: 1 });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'WorkerTerminated', JSON.stringify(r.error));
    assert.equal(r.deltas, 1);
    const afterTerminate = r.start + r.ms - r.times[0];
    assert.ok(afterTerminate < 5000, `rejected ${afterTerminate} ms after the terminate()`);
    await rel.dispose('k');
  });
});
