/**
 * Readback through pooled staging buffers (src/gpu/io.ts), in Node on Dawn: many reads at once each get their own
 * data (a staging buffer is out of the pool while mapped), odd sizes and offsets, zero bytes, and reads after
 * the buffers were reused still return the current contents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { readBytes, readF32, upload } from '../../src/gpu/io.ts';

const dawn = useDawnContext();

test('concurrent, ragged and repeated reads return each buffer\'s current contents', async (t) => {
  const { gpu, why } = dawn;
  if (!gpu) return t.skip(why);
  const sizes = [1, 3, 64, 1000, 49280, 70001];
  const data = sizes.map((n, i) => Float32Array.from({ length: n }, (_, k) => i * 1e6 + k));
  const bufs = data.map((d) => upload(gpu!, d));
  for (let round = 0; round < 3; round++) {
    if (round > 0) for (let i = 0; i < bufs.length; i++) gpu.device.queue.writeBuffer(bufs[i], 0, data[i].map((v) => v + round));
    // All at once, twice over, so that pooled buffers of one size class are in use together.
    const got = await Promise.all([...bufs, ...bufs].map((b, j) => readF32(gpu!, b, sizes[j % sizes.length])));
    got.forEach((g, j) => {
      const want = data[j % sizes.length];
      assert.equal(g.length, want.length);
      for (let k = 0; k < g.length; k++) if (g[k] !== want[k] + round) assert.fail(`round ${round}, read ${j}, element ${k}: ${g[k]} ≠ ${want[k] + round}`);
    });
  }
  // A byte range from an offset, and an empty read.
  const part = new Uint8Array(await readBytes(gpu, bufs[3], 10, 8));
  assert.deepEqual([...part], [...new Uint8Array(data[3].map((v) => v + 2).buffer, 8, 10)]);
  assert.equal((await readBytes(gpu, bufs[0], 0)).byteLength, 0);
  assert.deepEqual(gpu.uncapturedErrors, []);
});
