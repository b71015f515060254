/**
 * The GPU-memory estimate and check (src/engine/memory.ts), GPU-free: the numbers for the test checkpoint's header
 * and for SmolVLM-256M's shapes, and `OutOfMemory` (with the numbers) for a small per-buffer limit or budget.
 * That the estimate matches what a real load allocates is checked in loading.test.ts (Chromium).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebVLMError } from '../../src/errors.ts';
import { checkMemory, estimateMemory, readWeightHeaders, type MemoryEstimate } from '../../src/engine/memory.ts';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import { checkCheckpointHeaders, idefics3TensorSpecs } from '../../src/models/idefics3/plan.ts';
import { ensureTestModel, TEST_MODEL_DIR } from './helpers.ts';

const REAL_256M = new URL('../../../shared/models/SmolVLM-256M-Instruct/config.json', import.meta.url);

async function testEstimate(weights: 'int4' | 'f32', contextLength = 256): Promise<MemoryEstimate> {
  await ensureTestModel();
  const bytes = new Uint8Array(readFileSync(join(TEST_MODEL_DIR, 'model.safetensors')));
  const handle = { name: 'model.safetensors', size: bytes.length, sha256: null, stream: () => new ReadableStream<Uint8Array>(), range: async (s: number, e: number) => bytes.slice(s, e) };
  // The estimate is the tensor plan's; the header must agree with it (the load checks the same).
  const config = parseIdefics3Config(JSON.parse(readFileSync(join(TEST_MODEL_DIR, 'config.json'), 'utf8')));
  checkCheckpointHeaders(config, [{ file: 'model.safetensors', header: { tensors: await readWeightHeaders([handle]) } }]);
  return estimateMemory({ config, weights, contextLength, framesPerImage: 17 });
}

test('estimate: KV cache exact, int4 weights well under f32, f32 weights = 4 bytes per parameter', async () => {
  const int4 = await testEstimate('int4');
  const f32 = await testEstimate('f32');
  // Test config: 2 layers, 1 KV head, head_dim 64, f32 K and V.
  assert.equal(int4.kvCache, 2 * 2 * 1 * 256 * 64 * 4);
  const stBytes = readFileSync(join(TEST_MODEL_DIR, 'model.safetensors')).length;
  // bf16 on disk → f32 on the GPU: twice the data bytes (the header is a few kB).
  assert.ok(Math.abs(f32.weights - 2 * stBytes) / f32.weights < 0.01, `f32 ${f32.weights} vs file ${stBytes}`);
  assert.ok(int4.weights < f32.weights / 3, `int4 ${int4.weights} vs f32 ${f32.weights}`);
  assert.equal(int4.total, int4.weights + int4.kvCache + int4.activations);
  assert.ok(int4.activations > 0);
});

test('checkMemory: a buffer over maxStorageBufferBindingSize, or a total over the budget, is OutOfMemory with the numbers', async () => {
  const e = await testEstimate('f32');
  const roomy = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31 };
  checkMemory('m', e, roomy);
  checkMemory('m', e, { ...roomy, budget: e.total });

  assert.throws(() => checkMemory('m', e, { ...roomy, maxStorageBufferBindingSize: 16 << 20 }), (err: unknown) => {
    assert.ok(err instanceof WebVLMError && err.code === 'OutOfMemory');
    // The largest f32 buffers are the token table and lm_head, [49280, 128] each: 25.2 MB.
    assert.match(err.message, /needs a GPU buffer of 24\.1 MiB \((lm_head|model\.text_model\.embed_tokens)\.weight \(f32\)\), but this adapter allows at most 16\.0 MiB per buffer/);
    assert.equal(err.details?.largestBuffer, 49280 * 128 * 4);
    return true;
  });
  assert.throws(() => checkMemory('m', e, { ...roomy, budget: e.total - 1 }), (err: unknown) => {
    assert.ok(err instanceof WebVLMError && err.code === 'OutOfMemory');
    assert.match(err.message, /needs about [\d.]+ MiB of GPU memory \(weights [\d.]+ MiB \+ KV cache 0\.3 MiB \(256 tokens\) \+ activations [\d.]+ MiB\), more than the budget/);
    assert.equal(err.details?.total, e.total);
    assert.match(err.hint, /memoryBudget|contextLength/);
    return true;
  });
});

test('SmolVLM-256M shapes: int4 weights about a quarter of f32 (f16 token table), KV for 4096 tokens 240 MiB', { skip: !existsSync(REAL_256M) && 'shared/models/SmolVLM-256M-Instruct missing' }, () => {
  const config = parseIdefics3Config(JSON.parse(readFileSync(REAL_256M, 'utf8')));
  const tensors = idefics3TensorSpecs(config);
  const params = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const f32 = estimateMemory({ config, weights: 'f32', contextLength: 4096, framesPerImage: 17 });
  const int4 = estimateMemory({ config, weights: 'int4', contextLength: 4096, framesPerImage: 17 });
  assert.equal(f32.weights, params * 4);
  // 30 layers × 2 (K, V) × 3 KV heads × 4096 × 64 × 4 bytes.
  assert.equal(int4.kvCache, 30 * 2 * 3 * 4096 * 64 * 4);
  assert.ok(int4.weights > f32.weights / 8 && int4.weights < f32.weights / 3, `int4 ${int4.weights} f32 ${f32.weights}`);
  // A 17-frame vision pass: the MLP activations [17·1024, 3072] f32 are the largest buffer, 204 MiB.
  assert.equal(int4.largestBuffer.bytes, 17 * 1024 * 3072 * 4);
});
