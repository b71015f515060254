/**
 * Bind-group and uniform-buffer reuse (src/gpu/bind-groups.ts), in Node on Dawn: a re-recorded pass reuses
 * every group yet reads the new uniform values; a different buffer or byte range is a new group and the work
 * lands there; the cache stays within its capacity.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { BindGroupCache } from '../../src/gpu/bind-groups.ts';
import { readF32, upload } from '../../src/gpu/io.ts';
import { add, scale } from '../../src/kernels/elementwise.ts';

const N = 300; // not a multiple of any workgroup size

describe('bind-group reuse (Node, Dawn)', () => {
  const dawn = useDawnContext();

  test('a re-recorded pass reuses every bind group and reads the new uniforms', async (t) => {
    const { gpu, why } = dawn;
    if (!gpu) return t.skip(why);
    const x = upload(gpu, Float32Array.from({ length: N }, (_, i) => i - 100));
    const y = upload(gpu, Float32Array.from({ length: N }, (_, i) => 0.5 * i));
    const out = gpu.allocator.create(N * 4), tmp = gpu.allocator.create(N * 4);
    const pass = async (alpha: number) => {
      const rec = gpu!.recorder('reuse');
      scale(gpu!, rec, { x, out: tmp, n: N, alpha });
      add(gpu!, rec, { a: tmp, b: y, out, n: N });
      rec.submit();
      rec.destroy();
      return readF32(gpu!, out, N);
    };
    await pass(1);
    const { hits, misses } = gpu.bindGroups;
    for (const alpha of [2, -3.5]) {
      const got = await pass(alpha);
      for (let i = 0; i < N; i++) assert.equal(got[i], Math.fround(Math.fround(alpha * (i - 100)) + 0.5 * i), `alpha ${alpha}, i ${i}`);
    }
    assert.equal(gpu.bindGroups.misses, misses, 'no group created for the same dispatches over the same buffers');
    assert.equal(gpu.bindGroups.hits - hits, 4);
    assert.deepEqual(gpu.uncapturedErrors, []);
  });

  test('another buffer or another byte range of one is another group, and the work lands there', async (t) => {
    const { gpu, why } = dawn;
    if (!gpu) return t.skip(why);
    const H = 512; // second range at element 512: storage offsets must be 256-byte aligned
    const x = upload(gpu, Float32Array.from({ length: 2 * H }, (_, i) => i + 1));
    const outs = [gpu.allocator.create(2 * H * 4), gpu.allocator.create(2 * H * 4)];
    const misses = gpu.bindGroups.misses;
    for (const [o, half] of [[0, 0], [1, 0], [0, 1]] as const) {
      const rec = gpu.recorder('ranges');
      const range = { offset: half * H * 4, size: N * 4 };
      scale(gpu, rec, { x: { buffer: x, ...range }, out: { buffer: outs[o], ...range }, n: N, alpha: 10 });
      rec.submit();
      rec.destroy();
      const got = await readF32(gpu, outs[o], N, half * H);
      for (let i = 0; i < N; i++) assert.equal(got[i], 10 * (half * H + i + 1));
    }
    assert.equal(gpu.bindGroups.misses - misses, 3);
    assert.deepEqual(gpu.uncapturedErrors, []);
    const first = await readF32(gpu, outs[1], N, H);
    assert.ok(first.every((v) => v === 0), 'the second half of the second output was never written');
  });

  test('the cache holds at most its capacity, dropping the least recently used', async (t) => {
    const { gpu, why } = dawn;
    if (!gpu) return t.skip(why);
    const cache = new BindGroupCache(gpu.device, 2);
    const rec = gpu.recorder('cap');
    const bufs = [0, 1, 2].map(() => gpu!.allocator.create(N * 4));
    // Any compute pipeline will do: take the one the scale kernel uses.
    scale(gpu, rec, { x: bufs[0], n: N, alpha: 1 });
    const op = (rec as unknown as { ops: Array<{ pipeline: GPUComputePipeline; bindings: unknown[] }> }).ops[0];
    const slot = { buffer: gpu.device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM }), offset: 0, size: 32 };
    const groups = bufs.map((b) => cache.get(op.pipeline, [{ buffer: b }, slot]));
    assert.equal(cache.size, 2);
    assert.equal(cache.misses, 3);
    assert.equal(cache.get(op.pipeline, [{ buffer: bufs[2] }, slot]), groups[2], 'the newest stays');
    assert.notEqual(cache.get(op.pipeline, [{ buffer: bufs[0] }, slot]), groups[0], 'the oldest was dropped and is made anew');
    assert.equal(cache.misses, 4);
    assert.deepEqual(gpu.uncapturedErrors, []);
    rec.destroy();
  });
});
