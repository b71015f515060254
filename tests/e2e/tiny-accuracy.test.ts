/**
 * Quality in webvlm: the tiny SmolVLM-layout model trained here (models/tiny, committed) answers the committed
 * held-out set (300 images, 6 tasks) through the real engine on the GPU (Node, Dawn), loaded through the hub
 * download path. Exact match, greedy. The goal is ≥ 90 % on the f32 path with the checkpoint's own tiling; int4
 * must stay close (quantization costs a little). The quality-vs-tokens table over all modes is
 * `models/tiny/webvlm-eval.ts` (README), not a test: it adds minutes and asserts nothing new.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dawnContext } from '../harness/dawn.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { Engine } from '../../src/engine/engine.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { evaluate, readHeldout, TINY_DIR, TINY_REPO, type EvalResult } from '../../models/tiny/webvlm-eval.ts';

/** torch's own accuracy of the same checkpoint on the same rows (models/tiny/eval.py). */
const torchEval = JSON.parse(readFileSync(`${TINY_DIR}eval_results.json`, 'utf8'));

function report(r: EvalResult): string {
  return `${r.weights} detail=${r.detail}: ${(100 * r.accuracy).toFixed(1)} % (${r.correct}/${r.n}), ${r.visualTokens.toFixed(1)} visual tokens/image, ` +
    `${r.seconds.toFixed(0)} s | ${Object.entries(r.perTask).map(([t, v]) => `${t} ${(100 * v.accuracy).toFixed(0)}`).join(', ')}` +
    (r.wrong.length ? `\n  wrong (first 8): ${r.wrong.slice(0, 8).map((w) => `${w.image} ${w.task} want ${w.want} got ${JSON.stringify(w.got)}`).join('; ')}` : '');
}

describe('tiny trained model: held-out accuracy in webvlm (Node, Dawn)', () => {
  let hub: HubServer;
  let gpu: GpuContext | null = null;
  let why = '';
  const rows = readHeldout();
  let f32: EvalResult | null = null;

  before(async () => {
    assert.ok(existsSync(`${TINY_DIR}checkpoint/model.safetensors`), 'models/tiny/checkpoint is committed');
    hub = await startHubServer({ repos: { [TINY_REPO]: `${TINY_DIR}checkpoint` } });
    ({ gpu, why } = await dawnContext());
  });
  after(async () => {
    gpu?.destroy();
    await hub?.close();
  });

  test('held-out set: 300 rows, 50 per task', () => {
    assert.equal(rows.length, 300);
    const per = new Map<string, number>();
    for (const r of rows) per.set(r.task, (per.get(r.task) ?? 0) + 1);
    assert.deepEqual([...per.values()], [50, 50, 50, 50, 50, 50]);
  });

  test('f32 weights, the checkpoint\'s tiling: exact match ≥ 90 %, equal to torch\'s answers within 1 %', { timeout: 900_000 }, async (t) => {
    if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
    const engine = await Engine.create(gpu, TINY_REPO, { baseUrl: hub.url, weights: 'f32', contextLength: 256 });
    try {
      f32 = await evaluate(engine, rows, { weights: 'f32', detail: 'high', compression: 1 });
    } finally {
      engine.dispose();
    }
    t.diagnostic(report(f32));
    const torchAcc = torchEval.with_splitting.overall.acc as number;
    t.diagnostic(`torch (models/tiny/eval.py) on the same rows: ${(100 * torchAcc).toFixed(1)} %`);
    assert.ok(f32.accuracy >= 0.9, `accuracy ${f32.accuracy}`);
    // The same weights in f32 on another framework: answers may flip only where two logits nearly tie.
    assert.ok(Math.abs(f32.accuracy - torchAcc) <= 0.01, `webvlm ${f32.accuracy} vs torch ${torchAcc}`);
    // Every task is learned, not just the average.
    for (const [task, v] of Object.entries(f32.perTask)) assert.ok(v.accuracy >= 0.75, `${task}: ${v.accuracy}`);
  });

  test('int4 weights (quantized on load): within 5 points of f32', { timeout: 900_000 }, async (t) => {
    if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
    const engine = await Engine.create(gpu, TINY_REPO, { baseUrl: hub.url, weights: 'int4', contextLength: 256 });
    let r: EvalResult;
    try {
      r = await evaluate(engine, rows, { weights: 'int4', detail: 'high', compression: 1 });
    } finally {
      engine.dispose();
    }
    t.diagnostic(report(r));
    assert.ok(r.accuracy >= 0.85, `int4 accuracy ${r.accuracy}`);
    if (f32) assert.ok(r.accuracy >= f32.accuracy - 0.05, `int4 ${r.accuracy} vs f32 ${f32.accuracy}`);
  });
});
