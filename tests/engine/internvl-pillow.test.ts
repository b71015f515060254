/**
 * InternVL original-layout preprocessing (src/models/internvl/processor.ts) against real Pillow: the fixtures in
 * models/internvl/pillow_fixtures.json were made by models/internvl/pillow_fixtures.py with Debian's Pillow 9.4.0
 * running OpenGVLab's `load_image` / `dynamic_preprocess` / `build_transform` (convert('RGB'), BICUBIC grid resize,
 * row-major crops, BICUBIC thumbnail, ToTensor + Normalize(ImageNet) in float32) on the same synthetic images.
 *
 * Per case: the grid and frame count equal; the uint8 frames (recovered from our float output through our
 * normalisation table, which is injective per channel) hash equal to Pillow's; every normalised value within 1e-6
 * (the table against numpy's float32 ToTensor/Normalize, then the tensor's sha256 and per-channel sums).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseInternVLConfig } from '../../src/models/internvl/config.ts';
import { imagePixels, internvlProcessorConfig, planImage } from '../../src/models/internvl/processor.ts';
import { normalizationTable, type Channels, type PixelImage } from '../../src/input/resample.ts';
import { internvlConfigJson } from '../../models/make-internvl.ts';

interface Case {
  w: number;
  h: number;
  mode: 'RGB' | 'RGBA' | 'L';
  grid: [number, number];
  frames: number;
  u8Sha256: string;
  u8FrameSha256: string[];
  f32Sha256: string;
  f32Sums: number[][];
}
const FIX = JSON.parse(readFileSync(new URL('../../models/internvl/pillow_fixtures.json', import.meta.url), 'utf8')) as {
  pillow: string; imageSize: number; minNum: number; maxNum: number; cases: Case[]; table: number[][];
};

/** pillow_fixtures.py's `synth`: channel ch of pixel (x, y). */
function synth(w: number, h: number, mode: Case['mode']): PixelImage {
  const c = ({ RGB: 3, RGBA: 4, L: 1 } as const)[mode] as Channels;
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) {
    data[(y * w + x) * c + ch] = ch === 3 ? (x * 3 + y * 5) % 256
      : (Math.floor((x * 255) / w) + Math.floor((y * 97) / h) + ((x * y + ch * 31) % 89) + (((x >> 2) ^ (y >> 3)) & 3) * 40 + ch * 50) % 256;
  }
  return { data, width: w, height: h, channels: c };
}

const cfg = internvlProcessorConfig(parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original')), null);
const M = cfg.tileSize;
const lut = normalizationTable({ rescaleFactor: cfg.rescaleFactor, rescaleDivisor: cfg.rescaleDivisor, mean: cfg.imageMean, std: cfg.imageStd });
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('pillow fixtures: the config is the one they were made with', () => {
  assert.deepEqual([M, cfg.minTiles, cfg.maxTiles, cfg.useThumbnail, cfg.layout], [FIX.imageSize, FIX.minNum, FIX.maxNum, true, 'original']);
  assert.ok(FIX.cases.length >= 15);
});

test('normalisation table: ToTensor (/255 float32) + Normalize(ImageNet) within 1e-6 of numpy float32 (in fact equal)', () => {
  let maxDiff = 0;
  for (let ch = 0; ch < 3; ch++) for (let v = 0; v < 256; v++) maxDiff = Math.max(maxDiff, Math.abs(lut[ch * 256 + v] - FIX.table[ch][v]));
  assert.ok(maxDiff <= 1e-6, `max |diff| ${maxDiff}`);
  assert.equal(maxDiff, 0);
});

for (const k of FIX.cases) {
  test(`pillow ${FIX.pillow}: ${k.w}×${k.h} ${k.mode} → grid ${k.grid.join('×')}, ${k.frames} frames, uint8 tiles byte-exact`, () => {
    const img = synth(k.w, k.h, k.mode);
    const plan = planImage(k.w, k.h, cfg);
    assert.deepEqual(plan.rows === 0 ? [1, 1] : [plan.cols, plan.rows], k.grid, 'grid (cols, rows)');
    assert.equal(plan.frames, k.frames, 'frames');
    const px = imagePixels(img, plan, cfg);
    assert.equal(px.length, k.frames * 3 * M * M);
    // Floats → uint8 HWC per frame through the inverse of the (strictly increasing) per-channel table.
    const inv = [0, 1, 2].map((ch) => new Map(Array.from({ length: 256 }, (_, v) => [lut[ch * 256 + v], v] as [number, number])));
    const plane = M * M, all = new Uint8Array(k.frames * 3 * plane);
    const frameSha: string[] = [];
    for (let f = 0; f < k.frames; f++) {
      const u8 = all.subarray(f * 3 * plane, (f + 1) * 3 * plane);
      for (let ch = 0; ch < 3; ch++) {
        const base = (f * 3 + ch) * plane;
        let sum = 0, comp = 0; // Neumaier: near-exact, as math.fsum
        for (let i = 0; i < plane; i++) {
          const x = px[base + i];
          const v = inv[ch].get(x);
          if (v === undefined) assert.fail(`frame ${f} ch ${ch} pixel ${i}: ${x} is no table value`);
          u8[i * 3 + ch] = v;
          const t = sum + x;
          comp += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
          sum = t;
        }
        const want = k.f32Sums[f][ch];
        assert.ok(Math.abs(sum + comp - want) <= 1e-6 * plane, `frame ${f} ch ${ch} sum ${sum + comp} vs ${want}`);
      }
      frameSha.push(sha(u8).slice(0, 16));
    }
    assert.deepEqual(frameSha, k.u8FrameSha256, 'per-frame uint8 sha256');
    assert.equal(sha(all), k.u8Sha256, 'uint8 frames sha256');
    assert.equal(sha(new Uint8Array(px.buffer, px.byteOffset, px.byteLength)), k.f32Sha256, 'float32 tensor sha256 (bit-exact)');
  });
}
