/**
 * InternVL through the engine's real load path (Node, Dawn): a CI-sized random-weight checkpoint in the original
 * layout (models/make-internvl.ts, bf16, with the real InternVL3 tokenizer files and a derived tokenizer.json) served
 * in hub layout, loaded by `loadModel` (registry → config → header check → streamed weights), then the processor's
 * ids and pixels, logits and greedy tokens against the f64 reference — f32 weights, and int4 against the reference
 * on the dequantized weights (so the kernels' error is measured apart from the quantization's).
 */
import { loadedView } from '../reference/int4-view.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnContext } from '../harness/dawn.ts';
import { compare } from '../harness/check.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { loadModel } from '../../src/engine/load.ts';
import { internvlPlan } from '../../src/models/internvl/plan.ts';
import type { InternVLConfig } from '../../src/models/internvl/config.ts';
import { writeInternVLCheckpoint } from '../../models/make-internvl.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { INTERNVL3_DIR } from '../helpers/qwen2-tokenizer.ts';
import { readSafetensors } from '../reference/read-safetensors.ts';
import { argmax, InternVLReference, type WeightMap } from '../reference/internvl-ref.ts';
import { existsSync } from 'node:fs';

const REPO = 'webvlm-test/random-internvl';

function testImage(width: number, height: number) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    data.set([(x * 255) / width, (y * 255) / height, ((x >> 2) ^ (y >> 2)) & 1 ? 200 : 40, 255], (y * width + x) * 4);
  }
  return { width, height, channels: 4 as const, data };
}

describe('InternVL through loadModel vs the f64 reference (Node, Dawn)', () => {
  let dir: string;
  let hub: HubServer | undefined;
  let gpu: GpuContext | null = null;
  let why = '';
  let weights: WeightMap;
  const haveTokenizer = existsSync(INTERNVL3_DIR + 'vocab.json');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webvlm-internvl-'));
    if (!haveTokenizer) return;
    await writeInternVLCheckpoint({ size: 'test', layout: 'original', out: dir, seed: 5, tokenizerDir: INTERNVL3_DIR });
    hub = await startHubServer({ repos: { [REPO]: dir } });
    weights = readSafetensors(join(dir, 'model.safetensors'));
    ({ gpu, why } = await dawnContext());
  });
  after(async () => {
    gpu?.destroy();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const format of ['f32', 'int4'] as const) {
    test(`${format} weights: loadModel, processor, logits and greedy tokens`, { timeout: 600_000 }, async (t) => {
      if (!haveTokenizer) return t.skip(`no tokenizer files at ${INTERNVL3_DIR}`);
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const m = await loadModel(gpu, REPO, { baseUrl: hub!.url, weights: format });
      assert.equal(m.family.name, 'internvl');
      const cfg = m.config as unknown as InternVLConfig;
      const image = testImage(120, 70);
      const out = m.processor.processChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in the picture?' }] }], [image]);
      const frames = out.pixelShape[0];
      assert.equal(out.inputIds.filter((x) => x === 151667).length, frames * 4);
      const features = await m.model.encodeImage(out.pixelValues, frames);
      const cache = m.model.newCache(256);
      const rows = 3, V = cfg.text.vocabSize;
      const got = await m.model.forward(out.inputIds, cache, [features], rows);
      const ref = new InternVLReference(cfg, format === 'int4' ? loadedView(internvlPlan(cfg), weights).map : weights);
      const px = { shape: out.pixelShape, data: out.pixelValues };
      const { logits } = ref.textForward(out.inputIds, ref.imageFeatures(px), undefined, rows);
      const s = compare(got, logits.data);
      t.diagnostic(`${format}: ${out.inputIds.length} tokens, ${frames} frames; logits relL2 ${s.relL2.toExponential(2)} maxAbs ${s.maxAbs.toExponential(2)}`);
      // f32: GPU f32 vs f64 (≤ 1e-5); int4: the same on the dequantized weights, plus int4 GEMM/GEMV rounding (≤ 1e-4).
      assert.ok(s.relL2 <= (format === 'f32' ? 1e-5 : 1e-4), `relL2 ${s.relL2}`);
      const gpuTokens = [argmax(got.subarray((rows - 1) * V, rows * V))];
      while (gpuTokens.length < 5) gpuTokens.push(await m.model.forwardArgmax([gpuTokens[gpuTokens.length - 1]], cache));
      const refTokens = ref.greedy(out.inputIds, px, 5);
      t.diagnostic(`${format}: greedy ${JSON.stringify(gpuTokens)} (reference ${JSON.stringify(refTokens)})`);
      assert.deepEqual(gpuTokens, refTokens);
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      m.model.destroy();
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }
});
