/**
 * The request queue of the engine (Node, Dawn): a stream that is never read (or `return()`ed before reading) does
 * not hold the queue; `dispose()` during decoding stops the answer cleanly (no TypeError from freed buffers);
 * `reset()` queued behind a streaming answer does not change it. Through the Engine class and through the public
 * API inline, with the random-weight test checkpoint.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dawnGpu } from '../harness/dawn.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { createEngine } from '../../src/api/engine.ts';
import { Engine } from '../../src/engine/engine.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { ChatDelta } from '../../src/types.ts';
import { WebVLMError } from '../../src/errors.ts';
import { TEST_MODEL_DIR, ensureTestModel } from './helpers.ts';

const REPO = 'webvlm-test/random-smolvlm';
const T = { timeout: 300_000 };
const ask = (maxTokens = 6) => ({ messages: [{ role: 'user' as const, content: 'Say something.' }], maxTokens, temperature: 0 });

/** Resolves with `p`, or rejects after `ms` (a hang becomes a failure, not a stuck test). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<never>((_, r) => (timer = setTimeout(() => r(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

async function texts(s: AsyncIterable<ChatDelta>, onDelta?: (n: number) => void): Promise<{ text: string; done?: Extract<ChatDelta, { type: 'done' }>; error?: unknown }> {
  let text = '', n = 0;
  try {
    for await (const d of s) {
      if (d.type === 'done') return { text, done: d };
      text += d.text;
      onDelta?.(++n);
    }
    return { text };
  } catch (error) {
    return { text, error };
  }
}

describe('engine queue: unread streams, dispose during decode, queued reset (Node, Dawn)', () => {
  let hub: HubServer;
  let gpu: GPU | null = null;
  let ctx: GpuContext;
  let reference = '';

  before(async () => {
    await ensureTestModel();
    hub = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR } });
    gpu = await dawnGpu();
    if (gpu) ctx = await GpuContext.create({ gpu });
  });
  after(async () => {
    ctx?.destroy();
    await hub?.close();
  });

  test('Engine: a stream never read, and one return()ed before reading, do not hold the queue', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const engine = await Engine.create(ctx, REPO, { baseUrl: hub.url, contextLength: 128 });
    try {
      assert.equal(engine.keepsSpecialTokens, false, 'a SmolVLM answer skips special tokens (DocTags models keep them)');
      reference = (await texts(engine.chat(ask()))).text;
      engine.reset();
      engine.chat(ask()); // never read
      const it = engine.chat(ask())[Symbol.asyncIterator]();
      await it.return?.();
      engine.reset();
      const r = await within(texts(engine.chat(ask())), 60_000, 'the chat after unread streams');
      assert.ok(r.done, String(r.error));
      assert.equal(r.text, reference);
    } finally {
      await engine.dispose();
    }
  });

  test('Engine: dispose() during decoding ends the stream cleanly (no TypeError) and resolves', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const engine = await Engine.create(ctx, REPO, { baseUrl: hub.url, contextLength: 128 });
    let disposing: Promise<void> | null = null;
    const r = await within(texts(engine.chat(ask(40)), (n) => {
      if (n === 1) disposing = engine.dispose();
    }), 60_000, 'the stream after dispose');
    await within(disposing!, 30_000, 'dispose');
    if (r.error) assert.ok(r.error instanceof WebVLMError && ['Aborted', 'Disposed'].includes(r.error.code), `got ${r.error}`);
    else assert.equal(r.done?.finishReason, 'abort');
    assert.ok((r.done?.usage.completionTokens ?? 0) < 40, 'stopped early');
    assert.throws(() => engine.chat(ask()), (e: WebVLMError) => e.code === 'Disposed');
  });

  test('Engine: reset() while an answer streams waits for it: the answer equals the fresh one', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const engine = await Engine.create(ctx, REPO, { baseUrl: hub.url, contextLength: 128 });
    try {
      const long = (await texts(engine.chat(ask(12)))).text;
      await engine.reset();
      let resetDone = -1, deltas = 0;
      const r = await texts(engine.chat(ask(12)), (n) => {
        deltas = n;
        if (n === 1) void engine.reset().then(() => (resetDone = deltas));
      });
      assert.equal(r.text, long, 'the streaming answer is not changed by the reset');
      await new Promise((res) => setTimeout(res, 0));
      assert.ok(resetDone === -1 || resetDone === deltas, 'the reset ran after the answer');
      const again = await texts(engine.chat(ask(12)));
      assert.equal(again.done?.usage.cachedTokens, 0, 'the reset did happen (nothing reused)');
    } finally {
      await engine.dispose();
    }
  });

  test('abort, reset and dispose at every phase boundary (encode, prefill, first token): typed outcome, next chat as fresh', { timeout: 600_000 }, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const img = { width: 40, height: 30, channels: 4 as const, data: new Uint8ClampedArray(40 * 30 * 4).map((_, i) => (i * 37) & 255) };
    const req = (onPhase?: (p: string) => void) => ({
      messages: [{ role: 'user' as const, content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is it?' }] }],
      images: [img], maxTokens: 5, temperature: 0, detail: 'low' as const, onPhase,
    });
    const base = await Engine.create(ctx, REPO, { baseUrl: hub.url, contextLength: 128 });
    const fresh = await texts(base.chat(req()));
    assert.ok(fresh.done);
    await base.dispose();
    for (const phase of ['encode', 'prefill', 'token'] as const) {
      for (const action of ['abort', 'reset', 'dispose'] as const) {
        const what = `${action} at ${phase}`;
        const engine = await Engine.create(ctx, REPO, { baseUrl: hub.url, contextLength: 128 });
        const ctrl = new AbortController();
        let side: Promise<void> | undefined;
        const act = () => {
          if (action === 'abort') ctrl.abort();
          else side = action === 'reset' ? engine.reset() : engine.dispose();
        };
        const r = await within(texts(engine.chat({ ...req((p) => p === phase && act()), signal: ctrl.signal }), (n) => phase === 'token' && n === 1 && act()), 60_000, what);
        await within(side ?? Promise.resolve(), 30_000, `${what}: the ${action}`);
        if (action === 'reset') {
          assert.equal(r.text, fresh.text, `${what}: a reset never changes the answer being written`);
        } else if (r.error) {
          assert.ok(r.error instanceof WebVLMError && ['Aborted', 'Disposed'].includes(r.error.code), `${what}: ${String(r.error)}`);
        } else {
          assert.equal(r.done?.finishReason, 'abort', what);
        }
        if (action === 'dispose') {
          assert.throws(() => engine.chat(req()), (e: WebVLMError) => e.code === 'Disposed', what);
          continue;
        }
        const next = await texts(engine.chat(req()));
        assert.equal(next.text, fresh.text, `${what}: the next chat differs from a fresh engine's`);
        await engine.dispose();
      }
    }
  });

  test('public API inline: unread streams do not hold the queue; dispose() during decoding is clean', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const engine = await createEngine(REPO, { inline: true, gpu, baseUrl: hub.url, contextLength: 128 });
    engine.chat(ask());
    const it = engine.chat(ask())[Symbol.asyncIterator]();
    await it.return?.();
    await engine.reset();
    const r = await within(texts(engine.chat(ask())), 60_000, 'the chat after unread streams');
    assert.equal(r.text, reference);
    let disposing: Promise<void> | null = null;
    const d = await within(texts(engine.chat(ask(40)), (n) => {
      if (n === 1) disposing = engine.dispose();
    }), 60_000, 'the stream after dispose');
    await within(disposing!, 30_000, 'dispose');
    if (d.error) assert.ok(d.error instanceof WebVLMError && ['Aborted', 'Disposed'].includes(d.error.code), `got ${d.error}`);
    else assert.equal(d.done?.finishReason, 'abort');
    const after = await texts(engine.chat(ask()));
    assert.ok(after.error instanceof WebVLMError && after.error.code === 'Disposed');
  });
});
