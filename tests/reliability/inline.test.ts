/**
 * The public API with `inline: true` in Node (Dawn on lavapipe): the same `createEngine` as in a browser, the host
 * called in this thread. Covers what is the same in any thread — option and request checks (typed errors, nothing
 * queued), the image key of the KV-cache reuse, stop strings at the end of an answer, a generated `<image>` token,
 * non-finite logits — with the random-weight test checkpoint and the tiny trained model (one-word answers then
 * `<end_of_utterance>`), both served by the local hub server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dawnGpu } from '../harness/dawn.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { decodePng } from '../helpers/png.ts';
import { createEngine, type WebVLMEngine } from '../../src/api/engine.ts';
import type { ChatDelta, ChatRequest, EngineOptions, LoadProgress } from '../../src/types.ts';
import { WebVLMError } from '../../src/errors.ts';
import { TEST_MODEL_DIR, ensureTestModel, modelVariant } from './helpers.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { TINY_DIR } from '../../models/tiny/webvlm-eval.ts';

const REPO = 'webvlm-test/random-smolvlm';
const TINY = 'webvlm-test/tiny-smolvlm';
const T = { timeout: 300_000 };

interface Outcome { text: string; deltas: ChatDelta[]; done?: Extract<ChatDelta, { type: 'done' }>; error?: WebVLMError }

async function collect(stream: AsyncIterable<ChatDelta>): Promise<Outcome> {
  const deltas: ChatDelta[] = [];
  let text = '';
  try {
    for await (const d of stream) {
      deltas.push(d);
      if (d.type === 'text') text += d.text;
      else return { text, deltas, done: d };
    }
    return { text, deltas };
  } catch (e) {
    assert.ok(e instanceof WebVLMError, `a typed error, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    return { text, deltas, error: e };
  }
}

/** An RGBA `{ width, height, data }` (what an inline engine takes in Node), filled from `seed`. */
function pixels(w: number, h: number, seed: number): { width: number; height: number; data: Uint8ClampedArray } {
  const data = new Uint8ClampedArray(w * h * 4);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    data[i] = i % 4 === 3 ? 255 : s & 0xff;
  }
  return { width: w, height: h, data };
}

/** FNV-1a as the old image key computed it, continued from `h` over `bytes`. */
function fnv(h: number, bytes: ArrayLike<number>): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/**
 * Two different images whose old 32-bit key collides: each gets its last 4 pixels (12 free RGB bytes) from a PRNG,
 * searched meet-in-the-middle (2^17 tails of A kept; about one cross collision per 2^15 tails of B).
 */
function collidingPair(w: number, h: number): [ReturnType<typeof pixels>, ReturnType<typeof pixels>] {
  const a = pixels(w, h, 11);
  const b = pixels(w, h, 99);
  const n = a.data.length, T = 16;
  const ha = fnv(0x811c9dc5, a.data.subarray(0, n - T));
  const hb = fnv(0x811c9dc5, b.data.subarray(0, n - T));
  const tail = (k: number, side: number) => {
    const t = pixels(4, 1, k * 2 + side + 1).data;
    return t;
  };
  const seen = new Map<number, number>();
  for (let k = 0; k < 1 << 17; k++) seen.set(fnv(ha, tail(k, 0)), k);
  for (let k = 0; k < 1 << 22; k++) {
    const tb = tail(k, 1);
    const ka = seen.get(fnv(hb, tb));
    if (ka === undefined) continue;
    a.data.set(tail(ka, 0), n - T);
    b.data.set(tb, n - T);
    assert.equal(fnv(0x811c9dc5, a.data), fnv(0x811c9dc5, b.data));
    return [a, b];
  }
  throw new Error('no collision found');
}

describe('createEngine inline in Node: typed errors, image keys, stop flush, generated <image>, non-finite logits', () => {
  let hub: HubServer;
  let gpu: GPU | null = null;
  let engine: WebVLMEngine;
  const load = (model: string, o: EngineOptions = {}) => createEngine(model, { inline: true, gpu: gpu!, baseUrl: hub.url, contextLength: 256, ...o });
  const ask = (text: string, extra: Partial<ChatRequest> = {}, image?: unknown): ChatRequest => ({
    messages: [{ role: 'user', content: [...(image ? [{ type: 'image' as const, image: image as ImageData, detail: 'low' as const }] : []), { type: 'text' as const, text }] }],
    maxTokens: 6, temperature: 0, ...extra,
  });

  before(async () => {
    await ensureTestModel();
    hub = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR, [TINY]: `${TINY_DIR}checkpoint` } });
    gpu = await dawnGpu();
    if (gpu) engine = await load(REPO);
  });
  after(async () => {
    await engine?.dispose();
    await hub?.close();
  });

  test('an inline engine loads and answers in Node (the documented option works)', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    assert.equal(engine.info.model, REPO);
    const r = await collect(engine.chat(ask('Hello.', {}, pixels(24, 16, 3))));
    assert.ok(r.done, JSON.stringify(r.error));
    assert.equal(r.done.usage.completionTokens, 6);
    assert.equal(r.done.usage.images.length, 1);
  });

  test('load progress: one fraction that only grows and is 1 at ready; bytes over every file, total known up front; a compile phase', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const events: LoadProgress[] = [];
    const e = await load(REPO, { onProgress: (p) => events.push(p) });
    await e.dispose();
    const { readdirSync, statSync } = await import('node:fs');
    const opened = ['config.json', 'preprocessor_config.json', 'processor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'chat_template.json', 'generation_config.json', 'model.safetensors'];
    const bytes = readdirSync(TEST_MODEL_DIR).filter((f) => opened.includes(f)).reduce((n, f) => n + statSync(`${TEST_MODEL_DIR}${f}`).size, 0);
    assert.ok(events.length > 3);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].fraction >= events[i - 1].fraction, `fraction fell at event ${i}: ${events[i - 1].fraction} → ${events[i].fraction}`);
    const last = events.at(-1)!;
    assert.equal(last.phase, 'ready');
    assert.equal(last.fraction, 1);
    assert.ok(events.slice(0, -1).every((p) => p.fraction < 1), 'only ready is 1');
    assert.equal(last.bytesTotal, bytes, 'bytesTotal = the checkpoint files the loader reads');
    assert.equal(last.bytesLoaded, bytes);
    const firstWeights = events.findIndex((p) => p.file === 'model.safetensors' && p.phase === 'download' && p.loaded > 0);
    assert.ok(firstWeights > 0 && events[firstWeights].bytesTotal === bytes, 'the total is known before the weights arrive');
    // The small files are a sliver of the bytes: the bar must not jump ahead before the weights download.
    const weightBytes = statSync(`${TEST_MODEL_DIR}model.safetensors`).size;
    const atFirst = events[firstWeights];
    const expected = (0.95 * (bytes - weightBytes + atFirst.loaded)) / bytes;
    assert.ok(atFirst.fraction <= expected + 1e-9, `fraction ${atFirst.fraction} at the first weight bytes (${atFirst.loaded} of ${weightBytes}); the bytes say ${expected}`);
    const lastWeights = events.findLastIndex((p) => p.file === 'model.safetensors' && p.phase === 'download');
    assert.ok(events[lastWeights].fraction >= 0.9, `fraction ${events[lastWeights].fraction} once the weights are in`);
    const phases = [...new Set(events.map((p) => p.phase))];
    assert.deepEqual(phases.filter((p) => p === 'compile' || p === 'ready'), ['compile', 'ready']);
    assert.ok(phases.indexOf('compile') > phases.indexOf('quantize'), `phases in order: ${phases.join(', ')}`);
    const q = events.filter((p) => p.phase === 'quantize');
    assert.ok(q.length > 0 && q.every((p) => p.total > 0 && p.loaded <= p.total) && q.at(-1)!.loaded === q.at(-1)!.total, 'quantize counts tensors of a known total');
    t.diagnostic(`${events.length} events, ${bytes} bytes, phases ${phases.join(' → ')}`);
  });

  test('load options: wrong values are InvalidArgument naming the option, before anything loads', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const cases: Array<[string, EngineOptions]> = [
      ['contextLength', { contextLength: 0 }], ['contextLength', { contextLength: -5 }], ['contextLength', { contextLength: 1.5 }],
      ['contextLength', { contextLength: NaN }], ['weights', { weights: 'int8' as 'int4' }], ['memoryBudget', { memoryBudget: -1 }],
      ['cache', { cache: 'yes' as unknown as boolean }], ['revision', { revision: '' }], ['headers', { headers: { a: 1 as unknown as string } }],
    ];
    for (const [option, o] of cases) {
      const t0 = performance.now();
      await assert.rejects(load(REPO, o), (e: WebVLMError) => e.code === 'InvalidArgument' && e.message.includes(option) && !!e.hint, `${JSON.stringify(o)}`);
      assert.ok(performance.now() - t0 < 1000, 'fails at once');
    }
    await assert.rejects(createEngine(undefined as unknown as string, { inline: true }), (e: WebVLMError) => e.code === 'InvalidArgument');
  });

  test('chat requests: wrong shapes and values are typed errors (InvalidArgument), and the engine still answers', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const user = (content: unknown) => ({ messages: [{ role: 'user', content }] }) as unknown as ChatRequest;
    const bad: Array<[string, ChatRequest]> = [
      ['image undefined', user([{ type: 'image', image: undefined }, { type: 'text', text: 'x' }])],
      ['image null', user([{ type: 'image', image: null }])],
      ['image_url without url', user([{ type: 'image_url', image_url: {} }])],
      ['image_url null', user([{ type: 'image_url' }])],
      ['null part', user([null])],
      ['unknown part', user([{ type: 'audio' }])],
      ['text not a string', user([{ type: 'text', text: 5 }])],
      ['null message', { messages: [null] } as unknown as ChatRequest],
      ['bad role', { messages: [{ role: 'robot', content: 'hi' }] } as unknown as ChatRequest],
      ['no messages', { messages: [] } as unknown as ChatRequest],
      ['stop as a string', { ...ask('x'), stop: 'x' as unknown as string[] }],
      ['stop with a number', { ...ask('x'), stop: [1 as unknown as string] }],
      ['seed 1.5', { ...ask('x'), seed: 1.5 }],
      ['seed NaN', { ...ask('x'), seed: NaN }],
      ['seed -1', { ...ask('x'), seed: -1 }],
      ['maxTokens 0', { ...ask('x'), maxTokens: 0 }],
      ['temperature "hot"', { ...ask('x'), temperature: 'hot' as unknown as number }],
      ['detail "max"', { ...ask('x'), detail: 'max' as 'low' }],
      ['compression -2', { ...ask('x'), compression: -2 }],
      ['null request', null as unknown as ChatRequest],
    ];
    for (const [what, req] of bad) {
      const r = await collect(engine.chat(req));
      assert.equal(r.error?.code, 'InvalidArgument', `${what}: ${r.error?.message ?? 'no error'}`);
      assert.equal(r.deltas.length, 0, what);
    }
    const ok = await collect(engine.chat(ask('Hello.')));
    assert.ok(ok.done, `after the bad requests: ${ok.error?.message}`);
  });

  test("a chat template that calls raise_exception is TemplateError with the template's message", T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const refusing = "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ m['content'] }}{% endfor %}";
    const variant = modelVariant({ 'chat_template.jinja': refusing });
    const h = await startHubServer({ repos: { 'webvlm-test/refusing-template': variant.dir } });
    try {
      const e = await createEngine('webvlm-test/refusing-template', { inline: true, gpu, baseUrl: h.url, contextLength: 64 });
      try {
        const r = await collect(e.chat({ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], maxTokens: 2 }));
        assert.equal(r.error?.code, 'TemplateError', r.error?.message);
        assert.match(r.error!.message, /roles must alternate/);
        assert.ok(r.error!.hint.includes('alternate'));
        const ok = await collect(e.chat({ messages: [{ role: 'user', content: 'a' }], maxTokens: 2 }));
        assert.ok(ok.done, 'an accepted conversation still answers');
      } finally {
        await e.dispose();
      }
    } finally {
      await h.close();
      variant.remove();
    }
  });

  test('image key: two different images whose 32-bit FNV keys collide do not share cached features', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const [a, b] = collidingPair(32, 24);
    await engine.reset();
    const first = await collect(engine.chat(ask('What is this?', {}, a)));
    assert.ok(first.done);
    const second = await collect(engine.chat(ask('What is this?', {}, b)));
    assert.ok(second.done);
    const imageStart = second.done.usage.promptTokens - second.done.usage.visualTokens;
    assert.ok(second.done.usage.cachedTokens < imageStart, `image B must not reuse A's cached features (cached ${second.done.usage.cachedTokens} tokens, image run starts before ${imageStart})`);
    await engine.reset();
    const fresh = await collect(engine.chat(ask('What is this?', {}, b)));
    assert.equal(second.text, fresh.text, 'B after A answers as B on a fresh cache');
    // The same image again does reuse the cache (the key still works).
    const again = await collect(engine.chat(ask('What is this?', {}, { ...b, data: b.data.slice() })));
    assert.ok(again.done!.usage.cachedTokens > imageStart, 'an equal image reuses the cached features');
  });

  test('a generated <image> token keeps its own embedding: the stream ends with done, not InvalidArgument', T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const ctx = await GpuContext.create({ gpu });
    const { forcedImageVariant, firstGreedyToken, FORCED_PROMPT } = await import('./forced-token.ts');
    const orig = await firstGreedyToken(ctx, hub.url, REPO);
    assert.notEqual(orig.token, orig.imageTokenId);
    const variant = await forcedImageVariant(TEST_MODEL_DIR, orig.token, orig.imageTokenId);
    try {
      const forced = await firstGreedyToken(ctx, variant.hub.url, variant.repo);
      assert.equal(forced.token, orig.imageTokenId, 'the variant really generates <image> first');
      const e = await createEngine(variant.repo, { inline: true, gpu, baseUrl: variant.hub.url, contextLength: 64, weights: 'f32' });
      try {
        const r = await collect(e.chat({ messages: FORCED_PROMPT, maxTokens: 4, temperature: 0 }));
        assert.ok(r.done, `stream ended with ${r.error?.code}: ${r.error?.message}`);
        assert.equal(r.done.usage.completionTokens, 4);
      } finally {
        await e.dispose();
      }
    } finally {
      await variant.close();
      ctx.destroy();
    }
  });

  test("stop string: a held-back prefix is flushed when the answer ends (tiny model: ' blue' then <end_of_utterance>)", T, async (t) => {
    if (!gpu) return t.skip('no Dawn adapter');
    const tiny = await load(TINY, { weights: 'f32' });
    try {
      const row = JSON.parse(readFileSync(`${TINY_DIR}heldout/heldout.jsonl`, 'utf8').split('\n').find((l) => l.includes('"color"'))!);
      const img = decodePng(readFileSync(`${TINY_DIR}heldout/${row.image}`));
      const q = { messages: [{ role: 'user' as const, content: [{ type: 'image' as const, image: img as unknown as ImageData }, { type: 'text' as const, text: row.question }] }], maxTokens: 8, temperature: 0 };
      const plain = await collect(tiny.chat(q));
      assert.equal(plain.done?.finishReason, 'stop', 'the tiny model ends its answer itself');
      assert.ok(plain.text.trim().length > 0);
      const held = await collect(tiny.chat({ ...q, stop: [`${plain.text} and`] }));
      assert.equal(held.text, plain.text, 'text held back as a possible stop string is real text once the answer ends');
      assert.equal(held.done?.text, plain.text);
      assert.equal(held.done?.finishReason, 'stop');
      const cut = await collect(tiny.chat({ ...q, stop: [plain.text.slice(2)] }));
      assert.equal(cut.text, plain.text.slice(0, 2), 'a stop string that completes still cuts');
    } finally {
      await tiny.dispose();
    }
  });
});

