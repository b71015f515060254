/**
 * InternVL end to end on the GPU (Node, Dawn/lavapipe) against the f64 reference written from the upstream sources
 * (tests/reference/internvl-ref.ts), for both layouts, on CI-sized random-weight checkpoints at the real vocabulary
 * (models/make-internvl.ts 'test': 56-px tiles → 4 tokens per tile; original layout with an untied head, native
 * with a tied one): the real InternVL3 tokenizer's ids, image features, logits (relative L2 ≤ 1e-5, f32 weights) and
 * six greedy tokens.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dawnContext } from '../harness/dawn.ts';
import { compare } from '../harness/check.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { readF32 } from '../../src/gpu/io.ts';
import { parseInternVLConfig } from '../../src/models/internvl/config.ts';
import { internvlFamily } from '../../src/models/internvl/index.ts';
import { InternVLModel } from '../../src/models/internvl/model.ts';
import type { InternVLProcessor } from '../../src/models/internvl/processor.ts';
import { internvlConfigJson, internvlPreprocessorJson, internvlTensors } from '../../models/make-internvl.ts';
import { internvl3Tokenizer } from '../helpers/qwen2-tokenizer.ts';
import { argmax, InternVLReference, type WeightMap } from '../reference/internvl-ref.ts';

const HF_TEMPLATE = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}";

function testImage(width: number, height: number) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    data.set([(x * 255) / width, (y * 255) / height, ((x >> 3) ^ (y >> 3)) & 1 ? 230 : 20, 255], (y * width + x) * 4);
  }
  return { width, height, channels: 4 as const, data };
}

describe('InternVL end to end vs the f64 reference (Node, Dawn)', () => {
  let gpu: GpuContext | null = null;
  let why = '';
  before(async () => {
    ({ gpu, why } = await dawnContext());
  });
  after(() => gpu?.destroy());

  for (const layout of ['original', 'native'] as const) {
    test(`${layout} layout: ids, features, logits and greedy tokens match the reference`, { timeout: 600_000 }, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const tok = internvl3Tokenizer(layout === 'native' ? HF_TEMPLATE : undefined);
      if (!tok) return t.skip('no InternVL3 tokenizer files (shared/models/InternVL3-2B)');
      const json = internvlConfigJson('test', layout, { tie: layout === 'native' });
      const cfg = parseInternVLConfig(json);
      const tensors = [...internvlTensors(json, 11)];
      const weights: WeightMap = new Map(tensors.map((x) => [x.name, { shape: x.shape, data: x.values }]));
      async function* stream() {
        for (const x of tensors) yield x;
      }
      const model = await InternVLModel.load(gpu, cfg, stream(), { vision: 'f32', text: 'f32' });
      const proc = internvlFamily.createProcessor(tok, { config: json, preprocessorConfig: internvlPreprocessorJson('test', layout), processorConfig: null }, cfg) as InternVLProcessor;
      internvlFamily.checkConsistency(cfg, tok, proc);

      const image = testImage(150, 100);
      const out = proc.processChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe the image.' }] }], [image]);
      const frames = out.pixelShape[0];
      assert.equal(frames, 7, '3×2 tiles + thumbnail');
      const start = out.inputIds.indexOf(151665);
      assert.deepEqual(out.inputIds.slice(start, start + frames * 4 + 2), [151665, ...new Array(frames * 4).fill(151667), 151666]);

      const features = await model.encodeImage(out.pixelValues, frames);
      const ref = new InternVLReference(cfg, weights);
      const px = { shape: out.pixelShape, data: out.pixelValues };
      const refFeats = ref.imageFeatures(px);
      const fs = compare(await readF32(gpu, features, frames * 4 * cfg.text.hiddenSize), refFeats.data);
      const viaRgba = await model.encodeImageRgba(image, out.images[0], proc.pixels);
      const same = compare(await readF32(gpu, viaRgba, frames * 4 * cfg.text.hiddenSize), await readF32(gpu, features, frames * 4 * cfg.text.hiddenSize));
      assert.equal(same.maxAbs, 0, 'encodeImageRgba = encodeImage on the processor pixels');
      gpu.allocator.destroy(viaRgba);

      const rows = 4, V = cfg.text.vocabSize, S = out.inputIds.length;
      const cache = model.newCache(256);
      const got = await model.forward(out.inputIds, cache, [features], rows);
      const { logits } = ref.textForward(out.inputIds, refFeats, undefined, rows);
      const s = compare(got, logits.data);
      t.diagnostic(`${layout}: ${S} prompt tokens, ${frames} frames; features relL2 ${fs.relL2.toExponential(2)}; logits (last ${rows} rows) maxAbs ${s.maxAbs.toExponential(2)} relL2 ${s.relL2.toExponential(2)}`);
      // f32 GPU vs f64 over 2 + 2 layers and a 151674-wide head.
      assert.ok(fs.relL2 <= 1e-5, `features relL2 ${fs.relL2}`);
      assert.ok(s.relL2 <= 1e-5, `logits relL2 ${s.relL2}`);
      for (let r = 0; r < rows; r++) assert.equal(argmax(got.subarray(r * V, (r + 1) * V)), argmax(logits.data.subarray(r * V, (r + 1) * V)), `argmax row ${r}`);

      const gpuTokens = [argmax(got.subarray((rows - 1) * V, rows * V))];
      while (gpuTokens.length < 6) gpuTokens.push(await model.forwardArgmax([gpuTokens[gpuTokens.length - 1]], cache));
      const refTokens = ref.greedy(out.inputIds, px, 6);
      t.diagnostic(`${layout}: greedy ${JSON.stringify(gpuTokens)} (reference ${JSON.stringify(refTokens)})`);
      assert.deepEqual(gpuTokens, refTokens);
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      model.destroy();
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }
});
