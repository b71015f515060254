/**
 * Every public option and content part with wrong types and extreme values (Node, the public API inline, Dawn): each
 * gives a typed `WebVLMError` (or, where the value is valid, an answer) within a bounded time, and the next plain chat
 * still equals the fresh engine's answer. Random-weight test checkpoint, greedy, a few tokens.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dawnGpu } from '../harness/dawn.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { createEngine, type WebVLMEngine } from '../../src/api/engine.ts';
import type { ChatDelta, ChatRequest, EngineOptions } from '../../src/types.ts';
import { WebVLMError } from '../../src/errors.ts';
import { TEST_MODEL_DIR, ensureTestModel } from './helpers.ts';

const REPO = 'webvlm-test/random-smolvlm';
const WEIRD: unknown[] = [null, NaN, -1, 0, 0.5, 1.5, Infinity, -Infinity, 2 ** 60, '', 'x', {}, [], true, () => 1, Symbol('s')];
const label = (v: unknown) => (typeof v === 'symbol' ? 'Symbol' : typeof v === 'function' ? 'function' : Array.isArray(v) ? '[]' : typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v) ?? String(v));

async function outcome(s: AsyncIterable<ChatDelta>): Promise<{ text: string; done?: boolean; error?: unknown }> {
  let text = '';
  try {
    for await (const d of s) {
      if (d.type === 'done') return { text, done: true };
      text += d.text;
    }
    return { text };
  } catch (error) {
    return { text, error };
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<never>((_, r) => (timer = setTimeout(() => r(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('fuzzed options and content parts: typed errors in bounded time, the next chat unchanged (Node, inline)', () => {
  let hub: HubServer;
  let gpu: GPU | null = null;
  let engine: WebVLMEngine;
  const base = (): ChatRequest => ({ messages: [{ role: 'user', content: 'Say something.' }], maxTokens: 4, temperature: 0 });
  let reference = '';

  before(async () => {
    await ensureTestModel();
    hub = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR } });
    gpu = await dawnGpu();
    if (!gpu) return;
    engine = await createEngine(REPO, { inline: true, gpu, baseUrl: hub.url, contextLength: 128 });
    reference = (await outcome(engine.chat(base()))).text;
  });
  after(async () => {
    await engine?.dispose();
    await hub?.close();
  });

  const checkNext = async (what: string) => {
    await engine.reset();
    const r = await within(outcome(engine.chat(base())), 60_000, `${what}: the next chat`);
    assert.ok(r.done, `${what}: the next chat failed: ${String(r.error)}`);
    assert.equal(r.text, reference, `${what}: the next chat differs from the fresh engine's`);
  };

  const CHAT_OPTIONS = ['maxTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed', 'stop', 'detail', 'maxImageTokens', 'compression', 'signal'] as const;
  test(`chat options (${CHAT_OPTIONS.length} × ${WEIRD.length} values): typed error or an answer, each within 60 s`, { timeout: 600_000 }, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    let typed = 0, answered = 0;
    for (const key of CHAT_OPTIONS) {
      for (const v of WEIRD) {
        const what = `${key}: ${label(v)}`;
        const r = await within(outcome(engine.chat({ ...base(), [key]: v } as ChatRequest)), 60_000, what);
        if (r.error !== undefined) {
          assert.ok(r.error instanceof WebVLMError, `${what}: untyped ${String(r.error)}`);
          assert.ok(r.error.hint.length > 0, `${what}: no hint`);
          typed++;
        } else {
          assert.ok(r.done, `${what}: the stream ended without done`);
          answered++;
        }
      }
      await checkNext(key);
    }
    t.diagnostic(`${typed} typed errors, ${answered} answers`);
  });

  test('content parts and images of every wrong kind: typed errors, then the next chat unchanged', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const images: unknown[] = [...WEIRD, 'not a url::', new Uint8Array(3), { width: 2, height: 2, data: new Uint8ClampedArray(3) },
      { width: 0, height: 2, data: new Uint8ClampedArray(0) }, { width: 1e6, height: 1e6, data: new Uint8ClampedArray(4) }, { width: 'a', height: 1, data: new Uint8ClampedArray(4) }];
    for (const img of images) {
      for (const part of [{ type: 'image', image: img }, { type: 'image_url', image_url: { url: img } }, { type: 'image_url', image_url: img }]) {
        const what = `${part.type} ${label(img)}`;
        const r = await within(outcome(engine.chat({ ...base(), messages: [{ role: 'user', content: [part, { type: 'text', text: 'x' }] }] } as unknown as ChatRequest)), 30_000, what);
        if (r.done) continue; // e.g. a URL string that resolves (none here do)
        assert.ok(r.error instanceof WebVLMError, `${what}: untyped ${String(r.error)}`);
        assert.ok(['InvalidArgument', 'InvalidImage', 'ImageDecodeFailed'].includes(r.error.code), `${what}: ${r.error.code} ${r.error.message}`);
      }
    }
    for (const content of WEIRD) {
      const r = await outcome(engine.chat({ ...base(), messages: [{ role: 'user', content }] } as unknown as ChatRequest));
      if (typeof content === 'string' || Array.isArray(content)) continue; // valid: text, or no parts (an empty message)
      assert.ok(r.error instanceof WebVLMError && r.error.code === 'InvalidArgument', `content ${label(content)}: ${String(r.error)}`);
    }
    await checkNext('content parts');
  });

  const LOAD_OPTIONS = ['baseUrl', 'revision', 'weights', 'contextLength', 'memoryBudget', 'cache', 'headers', 'onProgress', 'signal'] as const;
  test(`load options (${LOAD_OPTIONS.length} × ${WEIRD.length} values): a typed error or a load, each within 60 s`, { timeout: 600_000 }, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    let typed = 0, loaded = 0;
    for (const key of LOAD_OPTIONS) {
      for (const v of WEIRD) {
        const what = `${key}: ${label(v)}`;
        const opts = { inline: true, gpu, baseUrl: hub.url, contextLength: 64, [key]: v } as EngineOptions;
        try {
          const e = await within(createEngine(REPO, opts), 60_000, what);
          loaded++;
          await e.dispose();
        } catch (err) {
          assert.ok(err instanceof WebVLMError, `${what}: untyped ${String(err)}`);
          typed++;
        }
      }
    }
    t.diagnostic(`${typed} typed errors, ${loaded} loads`);
    await checkNext('load options');
  });
});
