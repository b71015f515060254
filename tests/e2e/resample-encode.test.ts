/**
 * `Idefics3Model.encodeImageRgba` (GPU preprocessing from the decoded image) gives the same image features,
 * bit for bit, as `encodeImage` on the CPU processor's pixels: the preprocessing is bit-exact and the tower
 * is the same code path. Random-weight test checkpoint (64 px tiles), Node on Dawn/lavapipe.
 */
import { Idefics3Processor } from '../../src/models/idefics3/processor.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnGpu } from '../harness/dawn.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { readF32 } from '../../src/gpu/io.ts';
import { loadModel, type LoadedModel } from '../../src/engine/load.ts';
import type { Channels, PixelImage } from '../../src/input/resample.ts';
import { writeCheckpoint } from '../../models/make-checkpoint.ts';
import { DirSource } from '../helpers/dir-source.ts';

function image(w: number, h: number, c: Channels): PixelImage {
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let ch = 0; ch < c; ch++) data[(y * w + x) * c + ch] = ch === 3 ? ((x + 2 * y) * 5) & 255 : ((x * (ch + 3)) ^ (y * 7)) & 255;
  return { data, width: w, height: h, channels: c };
}

let dir = '';
let gpu: GpuContext | null = null;
let m: LoadedModel | null = null;

before(async () => {
  const g = await dawnGpu();
  if (!g) return;
  dir = mkdtempSync(join(tmpdir(), 'webvlm-rgba-'));
  await writeCheckpoint({ size: 'test', out: dir, seed: 3 });
  gpu = await GpuContext.create({ gpu: g });
  m = await loadModel(gpu, 'test/random', { source: new DirSource(dir), weights: 'f32' });
});
after(() => {
  m?.model.destroy();
  gpu?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const [w, h, c] of [[150, 100, 4], [37, 90, 3], [70, 50, 1]] as const) {
  test(`encodeImageRgba = encodeImage(imagePixels) for ${w}x${h}x${c}`, { timeout: 300_000 }, async (t) => {
    if (!gpu || !m) return t.skip('Dawn unavailable');
    const img = image(w, h, c);
    const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Hi' }] }];
    const proc = m.processor.processChat(messages, [img]);
    const plan = proc.images[0];
    // What the engine does on the GPU path: plans and tokens without CPU pixels, then encodeImageRgba.
    const lite = m.processor.processChat(messages, [img], { pixels: false });
    assert.equal(lite.pixelValues.length, 0);
    assert.deepEqual(lite.inputIds, proc.inputIds);
    assert.deepEqual(lite.images[0], plan);
    const a = await m.model.encodeImage(proc.pixelValues, plan.frames);
    const b = await m.model.encodeImageRgba(img, lite.images[0], (m.processor as Idefics3Processor).config);
    const fa = await readF32(gpu, a, a.size / 4), fb = await readF32(gpu, b, b.size / 4);
    assert.equal(fb.length, fa.length);
    let diff = 0;
    for (let i = 0; i < fa.length; i++) diff = Math.max(diff, Math.abs(fa[i] - fb[i]));
    t.diagnostic(`${plan.frames} frames (${plan.rows}x${plan.cols} + global), ${fa.length} feature values: max |Δ| = ${diff}`);
    assert.equal(diff, 0);
    gpu.allocator.destroy(a);
    gpu.allocator.destroy(b);
  });
}
