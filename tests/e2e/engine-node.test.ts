/**
 * The chat engine in Node on Dawn with the random test checkpoint (served in hub layout): GPU vs CPU image
 * preprocessing give the same answer; multi-turn reuses the KV cache and still answers exactly as a fresh
 * engine given the whole history; seeded sampling is reproducible; stop strings and maxTokens end answers;
 * streaming deltas concatenate to the final text.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnGpu } from '../harness/dawn.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { Engine, type EngineChatRequest } from '../../src/engine/engine.ts';
import type { ChatDelta, Usage } from '../../src/types.ts';
import { writeCheckpoint } from '../../models/make-checkpoint.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';

const REPO = 'webvlm-test/random-smolvlm';

function image(w: number, h: number, seed: number) {
  const data = new Uint8Array(w * h * 4);
  for (let i = 0; i < data.length; i++) data[i] = i % 4 === 3 ? 255 : (Math.imul(i + 1, 2654435761) ^ Math.imul(seed, 0x9e3779b9)) >>> 24;
  return { width: w, height: h, channels: 4 as const, data };
}

async function collect(stream: AsyncIterable<ChatDelta>): Promise<{ text: string; deltas: string[]; usage: Usage; finish: string }> {
  const deltas: string[] = [];
  for await (const d of stream) {
    if (d.type === 'text') deltas.push(d.text);
    else return { text: d.text, deltas, usage: d.usage, finish: d.finishReason };
  }
  throw new Error('the stream ended without a done delta');
}

describe('chat engine (Node, Dawn)', () => {
  let dir: string;
  let hub: HubServer;
  let gpu: GpuContext | null = null;
  let engine: Engine;
  let why = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webvlm-engine-'));
    await writeCheckpoint({ size: 'test', out: dir, seed: 3 });
    hub = await startHubServer({ repos: { [REPO]: dir } });
    const g = await dawnGpu();
    if (!g) return void (why = 'Dawn unavailable');
    gpu = await GpuContext.create({ gpu: g });
    engine = await Engine.create(gpu, REPO, { baseUrl: hub.url, weights: 'int4', contextLength: 512 });
  });
  after(async () => {
    engine?.dispose();
    gpu?.destroy();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const img = image(90, 70, 1);
  const ask = (extra: Partial<EngineChatRequest> = {}): EngineChatRequest => ({
    messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] }],
    images: [img], detail: 'auto', maxTokens: 6, ...extra,
  });

  test('GPU and CPU image preprocessing give the same greedy answer; deltas concatenate to the text', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip(why);
    engine.gpuPreprocess = false;
    engine.reset();
    const cpu = await collect(engine.chat(ask()));
    engine.gpuPreprocess = true;
    engine.reset();
    const gpuRun = await collect(engine.chat(ask()));
    engine.gpuPreprocess = false;
    t.diagnostic(`answer ${JSON.stringify(cpu.text)}; encode cpu-pixels ${cpu.usage.imageEncodeMs.toFixed(0)} ms, gpu-pixels ${gpuRun.usage.imageEncodeMs.toFixed(0)} ms`);
    assert.equal(gpuRun.text, cpu.text);
    assert.equal(cpu.deltas.join(''), cpu.text);
    assert.equal(cpu.finish, 'length');
    assert.equal(cpu.usage.completionTokens, 6);
    assert.equal(cpu.usage.images[0].frames, cpu.usage.images[0].rows * cpu.usage.images[0].cols + (cpu.usage.images[0].rows ? 1 : 0));
  });

  test('a second turn reuses the KV cache and answers as a fresh engine does', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip(why);
    engine.reset();
    const first = await collect(engine.chat(ask()));
    const history: EngineChatRequest['messages'] = [
      ...ask().messages,
      { role: 'assistant', content: first.text },
      { role: 'user', content: 'And the colors?' },
    ];
    const second = await collect(engine.chat(ask({ messages: history })));
    t.diagnostic(`turn 2: ${second.usage.promptTokens} prompt tokens, ${second.usage.cachedTokens} reused from the cache`);
    assert.ok(second.usage.cachedTokens > second.usage.visualTokens, 'the image and first turn came from the cache');
    assert.equal(second.usage.images.length, 1);
    engine.reset();
    const fresh = await collect(engine.chat(ask({ messages: history })));
    assert.equal(fresh.usage.cachedTokens, 0);
    assert.equal(second.text, fresh.text);
  });

  test('a different image in the same position is not taken from the cache', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip(why);
    engine.reset();
    await collect(engine.chat(ask()));
    const other = await collect(engine.chat(ask({ images: [image(90, 70, 2)] })));
    assert.ok(other.usage.cachedTokens < other.usage.promptTokens - other.usage.visualTokens + 1, `reused ${other.usage.cachedTokens}`);
    const fresh = (engine.reset(), await collect(engine.chat(ask({ images: [image(90, 70, 2)] }))));
    assert.equal(other.text, fresh.text);
  });

  test('seeded sampling is reproducible; stop strings end the answer without emitting them', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip(why);
    const sample = (seed: number) => (engine.reset(), collect(engine.chat(ask({ temperature: 1.2, topK: 50, topP: 0.95, seed, maxTokens: 8 }))));
    const a = await sample(11), b = await sample(11);
    assert.equal(a.text, b.text);
    const greedy = (engine.reset(), await collect(engine.chat(ask({ maxTokens: 8 }))));
    // Stop on a piece of the greedy answer: the answer ends right before it.
    const cut = greedy.text.slice(Math.floor(greedy.text.length / 2), Math.floor(greedy.text.length / 2) + 3);
    if (cut.trim().length === 0) return t.diagnostic('greedy answer too short to pick a stop string');
    engine.reset();
    const stopped = await collect(engine.chat(ask({ maxTokens: 8, stop: [cut] })));
    assert.equal(stopped.finish, 'stop');
    assert.equal(stopped.text, greedy.text.slice(0, greedy.text.indexOf(cut)));
    assert.ok(!stopped.deltas.join('').includes(cut));
  });

  test('bad requests throw typed errors and leave the engine usable', { timeout: 300_000 }, async (t) => {
    if (!gpu) return t.skip(why);
    await assert.rejects(collect(engine.chat(ask({ maxTokens: 0 }))), (e: any) => e.code === 'InvalidArgument', 'maxTokens 0');
    assert.throws(() => engine.chat(ask({ temperature: -1 })), (e: any) => e.code === 'InvalidArgument', 'temperature -1');
    await assert.rejects(collect(engine.chat(ask({ images: [] }))), (e: any) => e.code === 'InvalidArgument', 'image part without an image');
    await assert.rejects(collect(engine.chat(ask({ compression: 5 }))), (e: any) => e.code === 'InvalidArgument', 'compression beyond the token grid');
    const ok = (engine.reset(), await collect(engine.chat(ask({ maxTokens: 2 }))));
    assert.equal(ok.usage.completionTokens, 2);
  });
});
