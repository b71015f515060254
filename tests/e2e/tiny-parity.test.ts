/**
 * webvlm vs the training framework: the tiny trained model's committed torch fixture (models/tiny/fixture.json,
 * written by make_fixture.py from the committed checkpoint, torch float32) against webvlm's own pipeline on the GPU
 * (Node, Dawn): the processor + tokenizer + chat template must give the same ids and pixels from the same PNG and
 * question, the GPU forward the same logits, and greedy decoding the same tokens. (The f64 reference is checked
 * against the same fixture in tests/reference/idefics3-ref.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dawnContext } from '../harness/dawn.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { loadModel, type LoadedModel } from '../../src/engine/load.ts';
import { Idefics3Processor } from '../../src/models/idefics3/processor.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { decodePng } from '../helpers/png.ts';
import { compare } from '../harness/check.ts';
import { argmax } from '../reference/idefics3-ref.ts';
import { fixtureTensor } from '../helpers/tiny-fixture.ts';
import { TINY_DIR, TINY_REPO } from '../../models/tiny/webvlm-eval.ts';

interface Example extends Record<string, unknown> {
  name: string; image: string; question: string; do_image_splitting: boolean;
  input_ids: number[]; generated_ids: number[]; pixel_values_shape: number[];
}

describe('tiny trained model: webvlm on the GPU == torch fixture', () => {
  const fx = JSON.parse(readFileSync(`${TINY_DIR}fixture.json`, 'utf8')) as { eos_token_id: number; examples: Example[] };
  let hub: HubServer;
  let gpu: GpuContext | null = null;
  let why = '';
  let m: LoadedModel;

  before(async () => {
    hub = await startHubServer({ repos: { [TINY_REPO]: `${TINY_DIR}checkpoint` } });
    ({ gpu, why } = await dawnContext());
    if (gpu) m = await loadModel(gpu, TINY_REPO, { baseUrl: hub.url, weights: 'f32' });
  });
  after(async () => {
    m?.model.destroy();
    gpu?.destroy();
    await hub?.close();
  });

  test('fixture covers tiled and untiled images', () => {
    assert.ok(fx.examples.length >= 3);
    assert.ok(fx.examples.some((e) => e.do_image_splitting) && fx.examples.some((e) => !e.do_image_splitting));
  });

  for (const [i, ex] of fx.examples.entries()) {
    test(`example ${i} (${ex.name}): ids, pixels, logits and greedy tokens`, { timeout: 300_000 }, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const image = decodePng(readFileSync(`${TINY_DIR}heldout/${ex.image}`));
      const messages = [{ role: 'user' as const, content: [{ type: 'image' as const }, { type: 'text' as const, text: ex.question }] }];
      // The checkpoint's own rules ('high'); for do_image_splitting=False the processor config says so, as a
      // checkpoint's preprocessor_config.json would (HF then resizes to 256 px and squares to 64: two Lanczos passes,
      // unlike detail 'low', which resizes once, straight to the tile).
      const processor = ex.do_image_splitting ? m.processor : new Idefics3Processor(m.tokenizer, { ...(m.processor as Idefics3Processor).config, doImageSplitting: false });
      const proc = processor.processChat(messages, [image], { detail: 'high' });
      assert.deepEqual(proc.inputIds, ex.input_ids, 'prompt ids (template + tokenizer + image tokens)');
      assert.deepEqual(proc.pixelShape, ex.pixel_values_shape, 'pixel tensor shape');
      const px = compare(proc.pixelValues, fixtureTensor(ex, 'pixel_values').data);
      // Pillow-exact resampling: identical normalized pixels (1e-6 allows the last bit of the normalization).
      assert.ok(px.maxAbs <= 1e-6, `pixels maxAbs ${px.maxAbs}`);

      const features = await m.model.encodeImage(proc.pixelValues, proc.pixelShape[0]);
      const cache = m.model.newCache(256);
      const want = fixtureTensor(ex, 'logits');
      const [rows, V] = want.shape;
      const got = await m.model.forward(proc.inputIds, cache, [features], rows);
      const s = compare(got, want.data);
      t.diagnostic(`${proc.pixelShape[0]} frames, ${ex.input_ids.length} ids; logits (last ${rows} rows) vs torch f32: maxAbs ${s.maxAbs.toExponential(2)}, relL2 ${s.relL2.toExponential(2)}`);
      // f32 on both sides, different summation orders: relative L2 under 1e-5 (measured 2.5e-6 on the 9-frame example).
      assert.ok(s.relL2 < 1e-5, `logits relL2 ${s.relL2}`);
      for (let r = 0; r < rows; r++) assert.equal(argmax(got.subarray(r * V, (r + 1) * V)), argmax(want.data.subarray(r * V, (r + 1) * V)), `argmax row ${r}`);

      const tokens = [argmax(got.subarray((rows - 1) * V))];
      while (tokens.length < ex.generated_ids.length && tokens[tokens.length - 1] !== fx.eos_token_id) {
        tokens.push(await m.model.forwardArgmax([tokens[tokens.length - 1]], cache));
      }
      assert.deepEqual(tokens, ex.generated_ids, 'greedy tokens');
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
    });
  }
});
