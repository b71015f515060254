/**
 * The CPU reference resampler against Pillow: outputs of `PIL.Image.resize(size, LANCZOS)` (Pillow 9.4.0,
 * Debian's python3-pil) on synthetic images, pinned as SHA-256 + sum + first bytes. The same generator
 * (`synth`) is written in Python; each golden came from
 *   im = Image.fromarray(a, mode='P' if channels == 1 else None); np.array(im.resize((W, H), Image.LANCZOS))
 * and the composite one from Image.alpha_composite(Image.new('RGBA', size, (255,255,255)), im).convert('RGB').
 * Exact equality is expected: same fixed-point taps, same rounding, same pass order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  cropImage, framesToTensor, lanczos3, lanczosTaps, normalizationTable, premultiplyAlpha, resizeLanczosRaw, resizeNearest, resizePil,
  TAP_PRECISION_BITS, toRgb, unpremultiplyAlpha, validateImage, type Channels, type PixelImage,
} from '../../src/input/resample.ts';
import { isWebVLMError } from '../../src/errors.ts';

/** Gradient + hash noise; channel 3 is an alpha ramp through 0…255 (mirrored in the Python generator). */
function synth(w: number, h: number, c: Channels, seed = 0): PixelImage {
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let v: number;
        if (ch === 3) v = Math.max(0, Math.min(255, ((x * 7 + y * 3 + seed) % 300) - 20));
        else v = (Math.floor((x * 200) / w) + Math.floor((y * 55) / h) + (((x * 73856093) ^ (y * 19349663) ^ ((ch + seed) * 83492791)) & 63)) & 255;
        data[(y * w + x) * c + ch] = v;
      }
    }
  }
  return { data, width: w, height: h, channels: c };
}

const sha = (b: Uint8Array | Uint8ClampedArray) => createHash('sha256').update(b).digest('hex');
const sum = (b: Uint8Array | Uint8ClampedArray) => {
  let s = 0;
  for (const v of b) s += v;
  return s;
};

// [w, h, channels, W, H] (seed w + h) → sha256, byte sum, first 8 bytes of PIL's output.
const PIL_GOLDENS: Array<[[number, number, Channels, number, number], string, number, number[]]> = [
  [[37, 23, 3, 101, 67], '614f0973d595ca19baac78cb375dd22a1635d8d4e206890a0911a5cdb03a8e1d', 2880555, [25, 37, 21, 32, 31, 20, 45, 21]],
  [[37, 23, 3, 13, 9], '79c0ad656059e946320aedd34f4bb4f781f3b7a30056ab73aadec1de15f5e41a', 49894, [41, 34, 34, 50, 55, 57, 70, 67]],
  [[37, 23, 3, 37, 11], '8ee6aea80423f86e668a72d2d249ed6a4f07fbd54966db3a974abc865c97afc2', 173436, [46, 19, 20, 49, 27, 26, 29, 56]],
  [[37, 23, 3, 80, 23], '61bc234aec3d9124ccfb6c7c9d122096f0557a4f208a01fcc4835673e54bd8d7', 783510, [32, 30, 19, 41, 23, 17, 56, 13]],
  // The two steps SmolVLM runs on a 300×200 photo and on a 2048×1536 one (the global frame).
  [[300, 200, 3, 2048, 1366], '47ea888bfdee9d71479a89e3a130981d22ed8f254d22228275c9962591604b3a', 1203229039, [39, 20, 38, 39, 22, 37, 40, 25]],
  [[2048, 1536, 3, 512, 512], '3af96f31d27919e2df0dce641329f6165c8fa339c729630955fbaa731728a7f3', 112901041, [27, 37, 31, 32, 31, 31, 35, 28]],
  // RGBA: Pillow resizes premultiplied (RGBa) and converts back.
  [[29, 31, 4, 64, 17], '7c9ed7060c2aeb5ec1cf83dbd8db0290f05dbf21bf6be083cf62e62dd9169a4a', 635349, [44, 19, 19, 40, 48, 12, 18, 42]],
  [[29, 31, 4, 7, 100], '415bc1621e4052f3f97eaf6a1ea91e2cc870bb0090808d92e21e46ec114d9709', 411667, [55, 25, 25, 51, 66, 73, 70, 80]],
  [[1000, 3, 4, 3, 1000], '24f031ef51e9d680ba988ba16bd6127f2020b522dc8b42ae672bc43cf939931a', 1662601, [58, 58, 58, 130, 128, 128, 126, 129]],
  // 1 channel: transformers makes a mode "P" image, which Pillow resizes NEAREST.
  [[19, 7, 1, 50, 33], 'bbe9a9523d797b3bb4fcc2280da240c4080f49620589bb3e63cc83ceccd8aff8', 232197, [22, 22, 22, 21, 21, 65, 65, 65]],
  [[19, 7, 1, 5, 3], 'c9a7f758de3f4567a613694fcef27a0156993f48626fcf5c1007077d1d242ff3', 2181, [37, 83, 113, 191, 221, 55, 101, 131]],
  // Extreme aspect (SmolVLM's 4000×10 path).
  [[4000, 10, 3, 2048, 6], 'f7208f4c43175aa83cbbd1cdf3fd3da632831c504cd3809713e37bb0265b05ed', 5264799, [21, 46, 45, 36, 30, 30, 33, 33]],
  [[2048, 6, 3, 2048, 512], 'dfa3532957e0940c8e2e91d60313e672c7b2dc0983a47d5be2788f8b1a5480e5', 446511464, [8, 0, 57, 26, 33, 29, 45, 61]],
];

test('resizePil is bit-exact with Pillow LANCZOS / NEAREST on uint8 RGB, RGBA and gray', () => {
  for (const [[w, h, c, W, H], hash, total, head] of PIL_GOLDENS) {
    const out = resizePil(synth(w, h, c, w + h), W, H);
    const what = `${w}×${h}×${c} → ${W}×${H}`;
    assert.equal(out.width, W);
    assert.equal(out.height, H);
    assert.deepEqual(Array.from(out.data.subarray(0, 8)), head, `${what}: first bytes`);
    assert.equal(sum(out.data), total, `${what}: byte sum`);
    assert.equal(sha(out.data), hash, `${what}: sha256`);
  }
});

test('toRgb is bit-exact with Pillow alpha_composite on white', () => {
  const out = toRgb(synth(29, 31, 4, 5));
  assert.equal(sum(out.data), 559325);
  assert.equal(sha(out.data), '1a721a4bd59c81003da14e554c727e2ec0d22e03092d3f68b8aab42262980683');
  // Fully transparent → white; opaque → unchanged; gray → replicated.
  const px = toRgb({ data: Uint8Array.from([10, 20, 30, 0, 10, 20, 30, 255]), width: 2, height: 1, channels: 4 });
  assert.deepEqual(Array.from(px.data), [255, 255, 255, 10, 20, 30]);
  assert.deepEqual(Array.from(toRgb({ data: Uint8Array.from([7]), width: 1, height: 1, channels: 1 }).data), [7, 7, 7]);
});

test('Lanczos taps: window, normalisation, support scaled when downscaling', () => {
  assert.equal(lanczos3(0), 1);
  assert.equal(lanczos3(3), 0);
  assert.equal(lanczos3(-3.0000001), 0);
  assert.ok(Math.abs(lanczos3(1)) < 1e-15 && Math.abs(lanczos3(2)) < 1e-15);
  for (const [n, m] of [[37, 101], [2048, 512], [300, 2048], [7, 3], [1, 5], [4000, 1]]) {
    const t = lanczosTaps(n, m);
    assert.equal(t.ksize, Math.ceil(3 * Math.max(n / m, 1)) * 2 + 1, `${n}→${m} ksize`);
    for (let i = 0; i < m; i++) {
      let s = 0;
      let si = 0;
      for (let k = 0; k < t.count[i]; k++) {
        s += t.weights[i * t.ksize + k];
        si += t.fixed[i * t.ksize + k];
      }
      assert.ok(Math.abs(s - 1) < 1e-12, `${n}→${m} row ${i}: taps sum ${s}`);
      // Each tap rounds by ≤ 0.5 unit: the fixed-point sum is within count/2 units of 2^22.
      assert.ok(Math.abs(si - 2 ** TAP_PRECISION_BITS) <= t.count[i] / 2, `${n}→${m} row ${i}: fixed sum ${si}`);
      assert.ok(t.start[i] >= 0 && t.start[i] + t.count[i] <= n);
    }
  }
});

test('constant images stay constant; same size is a copy; 1×1 sources fill the output', () => {
  for (const c of [1, 3, 4] as const) {
    const img: PixelImage = { data: new Uint8Array(13 * 9 * c).fill(200), width: 13, height: 9, channels: c };
    for (const [W, H] of [[40, 3], [5, 27], [13, 9], [1, 1]]) {
      const out = resizePil(img, W, H);
      assert.ok(out.data.every((v) => v === 200), `${c}ch 13×9 → ${W}×${H}`);
      assert.notEqual(out.data, img.data);
    }
  }
  const one = resizeLanczosRaw({ data: Uint8Array.from([9, 99, 199]), width: 1, height: 1, channels: 3 }, 37, 23);
  for (let i = 0; i < 37 * 23; i++) assert.deepEqual(Array.from(one.data.subarray(i * 3, i * 3 + 3)), [9, 99, 199]);
  const n = resizeNearest(synth(8, 8, 3), 8, 8);
  assert.deepEqual(n.data, synth(8, 8, 3).data);
});

test('premultiply / unpremultiply follow Pillow rounding', () => {
  const img: PixelImage = { data: Uint8Array.from([255, 128, 1, 128, 200, 100, 50, 0, 77, 66, 55, 255]), width: 3, height: 1, channels: 4 };
  const pre = premultiplyAlpha(img);
  // round(255·128/255) = 128, round(128·128/255) = 64, round(1·128/255) = 1 (a·b + 128 then the /255 shift trick).
  assert.deepEqual(Array.from(pre.data), [128, 64, 1, 128, 0, 0, 0, 0, 77, 66, 55, 255]);
  const back = unpremultiplyAlpha({ ...pre, data: new Uint8Array(pre.data) });
  assert.deepEqual(Array.from(back.data), [255, 127, 1, 128, 0, 0, 0, 0, 77, 66, 55, 255]);
});

test('normalisation matches float32 transformers arithmetic; frames are channels-first', () => {
  const lut = normalizationTable({ rescaleFactor: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  assert.equal(lut[0], -1);
  assert.equal(lut[255], 1);
  for (let v = 0; v < 256; v++) {
    const r = Math.fround(v * (1 / 255));
    assert.equal(lut[v], Math.fround(Math.fround(r - 0.5) / 0.5));
  }
  // ImageNet-style mean/std: float32 steps, not float64.
  const mean = [0.48145466, 0.4578275, 0.40821073] as const;
  const std = [0.26862954, 0.26130258, 0.27577711] as const;
  const lut2 = normalizationTable({ rescaleFactor: 1 / 255, mean, std });
  for (let c = 0; c < 3; c++) {
    for (const v of [0, 1, 77, 128, 254, 255]) {
      const want = Math.fround(Math.fround(Math.fround(v / 255) - Math.fround(mean[c])) / Math.fround(std[c]));
      assert.equal(lut2[c * 256 + v], want);
    }
  }
  const img: PixelImage = { data: Uint8Array.from([0, 255, 51, 255, 0, 102, 10, 20, 30, 40, 50, 60]), width: 2, height: 2, channels: 3 };
  const t = framesToTensor([img], { rescaleFactor: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  assert.equal(t.length, 12);
  assert.deepEqual(Array.from(t.subarray(0, 4)), [0, 255, 10, 40].map((v) => lut[v]), 'R plane first');
  assert.deepEqual(Array.from(t.subarray(8, 12)), [51, 102, 30, 60].map((v) => lut[v]), 'B plane last');
});

test('crop, and typed errors for bad images and sizes', () => {
  const img = synth(10, 6, 3);
  const c = cropImage(img, 2, 1, 3, 4);
  assert.equal(c.width, 3);
  assert.deepEqual(Array.from(c.data.subarray(0, 3)), Array.from(img.data.subarray((1 * 10 + 2) * 3, (1 * 10 + 2) * 3 + 3)));
  const code = (fn: () => unknown, want: string) =>
    assert.throws(fn, (e: unknown) => isWebVLMError(e) && e.code === want, `expected ${want}`);
  code(() => validateImage({ data: new Uint8Array(0), width: 0, height: 4, channels: 3 }), 'InvalidImage');
  code(() => validateImage({ data: new Uint8Array(5), width: 2, height: 1, channels: 3 }), 'InvalidImage');
  code(() => validateImage({ data: new Uint8Array(4), width: 2, height: 1, channels: 2 as Channels }), 'InvalidImage');
  code(() => resizePil(img, 0, 5), 'InvalidArgument');
  code(() => resizePil(img, 3.5, 5), 'InvalidArgument');
  code(() => cropImage(img, 8, 0, 3, 2), 'InvalidArgument');
  // Uint8ClampedArray (ImageData) input works like Uint8Array.
  const clamped = { ...synth(9, 5, 4), data: new Uint8ClampedArray(synth(9, 5, 4).data) };
  assert.deepEqual(resizePil(clamped, 4, 11).data, resizePil(synth(9, 5, 4), 4, 11).data);
});
