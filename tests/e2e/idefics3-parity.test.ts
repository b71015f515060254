/**
 * End to end on the GPU (Node, Dawn/lavapipe) against the f64 reference written from transformers' code:
 * a random-weight SmolVLM-layout checkpoint is generated, served in hub layout by a local HTTP server and
 * loaded through the real download path; then image + text logits and greedy tokens are compared, for the
 * f32 weights and for int4 (against the reference run on the dequantized weights, so the kernel error is
 * measured apart from the quantization error, which is reported separately).
 */
import { loadedView } from '../reference/int4-view.ts';
import { Idefics3Processor } from '../../src/models/idefics3/processor.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnContext } from '../harness/dawn.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { loadModel, type LoadedModel } from '../../src/engine/load.ts';
import { writeCheckpoint } from '../../models/make-checkpoint.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { readSafetensors } from '../reference/read-safetensors.ts';
import { Idefics3Reference, argmax, type WeightMap } from '../reference/idefics3-ref.ts';
import { compare } from '../harness/check.ts';
import { compressRef } from '../kernels/compress.cases.ts';

const REPO = 'webvlm-test/random-smolvlm';

/** A deterministic RGBA test image with structure (gradients and blocks), so tiles differ. */
function testImage(width: number, height: number) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = (x * 255) / width;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = ((x >> 3) ^ (y >> 3)) & 1 ? 230 : 20;
      data[i + 3] = 255;
    }
  return { width, height, channels: 4 as const, data };
}

describe('Idefics3 end to end vs the f64 reference (Node, Dawn)', () => {
  let dir: string;
  let hub: HubServer;
  let gpu: GpuContext | null = null;
  let weights: WeightMap;
  let why = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webvlm-e2e-'));
    await writeCheckpoint({ size: 'test', out: dir, seed: 7 });
    hub = await startHubServer({ repos: { [REPO]: dir } });
    weights = readSafetensors(join(dir, 'model.safetensors'));
    ({ gpu, why } = await dawnContext());
  });
  after(async () => {
    gpu?.destroy();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('compression ×2: prompt tokens equal feature rows, logits match reference features → compressRef → text', { timeout: 600_000 }, async (t) => {
    if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
    const m: LoadedModel = await loadModel(gpu, REPO, { baseUrl: hub.url, weights: 'f32' });
    const T = m.model.tokensPerFrame, Tc = m.model.compressedTokensPerFrame(2);
    assert.equal(Tc * 4, T, 'a square grid of tokens compresses 2×2 → 1');
    // The engine's compressed processor: image_seq_len = Tc.
    const { Idefics3Processor } = await import('../../src/models/idefics3/processor.ts');
    const proc2 = new Idefics3Processor(m.tokenizer, { ...(m.processor as Idefics3Processor).config, imageSeqLen: Tc });
    const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is it?' }] }];
    const proc = proc2.processChat(messages, [testImage(150, 100)], { detail: 'auto' });
    const frames = proc.pixelShape[0];
    const imageTokens = proc.inputIds.filter((x) => x === m.config.imageTokenId).length;
    assert.equal(imageTokens, frames * Tc, 'prompt <image> count = frames × compressed tokens per frame');
    const features = await m.model.encodeImage(proc.pixelValues, frames, 2);
    assert.equal(features.size, frames * Tc * m.config.text.hiddenSize * 4, `feature rows = prompt image tokens (${features.size} bytes, ${frames} frames, Tc ${Tc})`);
    const cache = m.model.newCache(512);
    const got = await m.model.forward(proc.inputIds, cache, [features], 2);
    const ref = new Idefics3Reference(m.config, weights);
    const full = ref.imageFeatures({ shape: proc.pixelShape, data: proc.pixelValues })!;
    const side = Math.sqrt(T);
    const H = m.config.text.hiddenSize;
    const comp = compressRef({ x: Float32Array.from(full.data), F: frames, H: side, W: side, C: H, heads: m.config.text.numAttentionHeads, s: 2 });
    const { logits } = ref.textForward(proc.inputIds, { shape: [frames * Tc, H], data: comp });
    const V = m.config.text.vocabSize, S = proc.inputIds.length;
    const s = compare(got, logits.data.subarray((S - 2) * V, S * V));
    t.diagnostic(`compression ×2: ${frames} frames, ${frames * T} → ${frames * Tc} visual tokens; logits relL2 ${s.relL2.toExponential(2)}`);
    assert.ok(s.relL2 < 1e-4, `relative L2 ${s.relL2}`);
    gpu.allocator.destroy(features);
    cache.destroy(gpu);
    m.model.destroy();
  });

  for (const format of ['f32', 'int4'] as const) {
    test(`${format} weights: image+text logits and greedy tokens match the reference`, { timeout: 600_000 }, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const progress: string[] = [];
      const m: LoadedModel = await loadModel(gpu, REPO, { baseUrl: hub.url, weights: format, onProgress: (p) => progress.push(p.phase) });
      assert.ok(progress.includes('download'), 'the hub download path ran');
      const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Describe the image.' }] }];
      const proc = m.processor.processChat(messages, [testImage(150, 100)]);
      const frames = proc.pixelShape[0];
      assert.ok(frames > 1, 'the image is tiled');

      // GPU: encode the image (int4: in chunks of 3 frames, as big models do), prefill, logits of the last 4 positions.
      if (format === 'int4') m.model.maxFramesPerChunk = 3;
      const features = await m.model.encodeImage(proc.pixelValues, frames);
      const cache = m.model.newCache(1024);
      const rows = 4;
      const got = await m.model.forward(proc.inputIds, cache, [features], rows);

      // Reference on the same inputs (dequantized weights for int4).
      let refWeights = weights;
      if (format === 'int4') {
        const dq = loadedView(m.family.tensorPlan(m.config), weights);
        refWeights = dq.map;
        t.diagnostic(`int4 quantization error of the weights: relative L2 ${dq.relL2.toExponential(2)}`);
      }
      const ref = new Idefics3Reference(m.config, refWeights);
      const feats = ref.imageFeatures({ shape: proc.pixelShape, data: proc.pixelValues });
      const { logits } = ref.textForward(proc.inputIds, feats);
      const V = m.config.text.vocabSize;
      const S = proc.inputIds.length;
      const want = logits.data.subarray((S - rows) * V, S * V);
      const s = compare(got, want);
      t.diagnostic(`${format}: ${S} prompt tokens, ${frames} frames; logits of the last ${rows} rows vs f64 reference: maxAbs ${s.maxAbs.toExponential(2)}, relL2 ${s.relL2.toExponential(2)}`);
      // f32 GPU arithmetic vs f64 over 2+2 layers and a 49k-wide lm_head: relative L2 well under 1e-4.
      assert.ok(s.relL2 < 1e-4, `relative L2 ${s.relL2}`);
      for (let r = 0; r < rows; r++) {
        assert.equal(argmax(got.subarray(r * V, (r + 1) * V)), argmax(want.subarray(r * V, (r + 1) * V)), `argmax of row ${r}`);
      }

      // Greedy decoding: 6 tokens, GPU (KV cache, flash-decoding attention, argmax on the GPU) vs reference.
      const gpuTokens: number[] = [argmax(got.subarray((rows - 1) * V, rows * V))];
      while (gpuTokens.length < 6) gpuTokens.push(await m.model.forwardArgmax([gpuTokens[gpuTokens.length - 1]], cache));
      const refTokens = ref.greedy(proc.inputIds, { shape: proc.pixelShape, data: proc.pixelValues }, 6);
      t.diagnostic(`${format}: greedy ${JSON.stringify(gpuTokens)} (reference ${JSON.stringify(refTokens)})`);
      assert.deepEqual(gpuTokens, refTokens);
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      m.model.destroy();
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }
});
