/**
 * PIL BICUBIC (src/input/resample.ts `bicubicTaps` / `resizeBicubicRaw`) against values computed by an independent
 * Python transcription of Pillow's libImaging/Resample.c (8-bit path: `bicubic_filter` with a = -0.5, support 2
 * stretched by the downscale factor, taps normalised then rounded half away from zero to 22-bit fixed point,
 * horizontal pass over the rows the vertical pass reads, uint8 in between, `clip8`). No Pillow was installed where
 * the fixtures were made, so they are that transcription's output, not Pillow's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bicubic, bicubicTaps, normalizationTable, resizeBicubicRaw, toRgbDropAlpha } from '../../src/input/resample.ts';

/** The fixtures' deterministic RGB image (an LCG, as in the Python script). */
function image(w: number, h: number, seed: number) {
  const data = new Uint8Array(w * h * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = Number((BigInt(s) * 1103515245n + 12345n) & 0x7fffffffn);
    data[i] = (s >> 16) & 255;
  }
  return { data, width: w, height: h, channels: 3 as const };
}

const CASES = [
  { w: 7, h: 5, W: 4, H: 3, seed: 1, out: '137 81 147 153 179 163 136 56 202 142 104 124 112 81 64 176 111 152 91 158 157 137 117 121 89 177 59 202 159 86 177 124 130 100 139 129' },
  { w: 3, h: 2, W: 8, H: 5, seed: 2, out: '157 0 255 150 30 255 138 117 255 117 224 242 85 255 202 39 249 138 5 226 90 0 221 70 134 22 239 132 47 239 132 114 233 127 196 220 108 232 185 71 226 125 42 213 78 31 211 60 72 87 133 83 92 138 116 105 151 155 123 161 168 142 141 154 164 89 139 180 46 135 187 32 9 151 27 33 137 37 99 96 68 183 49 102 228 52 97 236 102 52 236 147 14 239 163 4 0 176 0 15 154 0 93 93 36 193 21 80 251 17 80 255 79 39 255 134 2 255 153 0' },
  { w: 5, h: 4, W: 5, H: 9, seed: 3, out: '80 210 130 114 140 176 76 176 67 40 96 63 50 13 242 86 175 120 129 145 185 78 191 78 56 127 77 75 38 212 96 88 97 173 158 207 80 228 107 94 207 106 139 95 138 115 37 74 183 158 229 90 253 118 115 248 145 176 155 92 147 109 55 92 114 255 124 243 77 84 166 198 128 201 144 174 180 49 18 82 255 148 214 37 46 74 236 77 231 200 171 125 77 99 131 157 112 156 49 39 68 214 108 226 173 156 34 116 226 204 30 60 95 78 43 94 170 164 204 121 151 0 132 255 233 0 39 69 90 44 102 153 185 196 100' },
  { w: 9, h: 3, W: 4, H: 3, seed: 4, out: '86 89 173 117 79 100 183 133 102 157 158 16 184 197 185 157 184 82 50 103 36 165 104 95 90 146 109 86 186 90 117 141 141 162 154 154' },
  { w: 13, h: 11, W: 5, H: 4, seed: 5, out: '136 147 95 157 109 155 104 141 125 90 167 73 136 119 90 95 159 91 134 110 80 161 95 141 131 119 119 134 117 103 121 118 127 129 141 118 140 61 158 133 83 89 128 140 103 152 119 122 137 85 116 144 107 136 79 134 140 102 132 122' },
];

test('bicubic filter: a = -0.5 values at quarter offsets', () => {
  assert.equal(bicubic(0), 1);
  assert.equal(bicubic(0.25), 0.8671875);
  assert.equal(bicubic(-0.75), 0.2265625);
  assert.equal(bicubic(1.25), -0.0703125);
  assert.equal(bicubic(1.75), -0.0234375);
  assert.equal(bicubic(2), 0);
});

test('bicubic taps 4 -> 8: clamped at the edge and renormalised, 22-bit fixed point', () => {
  const t = bicubicTaps(4, 8);
  const row = (i: number) => Array.from(t.fixed.subarray(i * t.ksize, i * t.ksize + t.count[i]));
  assert.deepEqual([t.start[0], t.count[0], t.start[1], t.count[1]], [0, 2, 0, 3]);
  assert.deepEqual(row(0), [4564390, -370086]);
  assert.deepEqual(row(1), [3398305, 887845, -91846]);
  assert.deepEqual(row(2), [928510, 3553952, -288158]);
});

test('bicubic resize: down, up, one axis, mixed — every byte as the Resample.c transcription', () => {
  for (const c of CASES) {
    const got = resizeBicubicRaw(image(c.w, c.h, c.seed), c.W, c.H);
    assert.deepEqual(Array.from(got.data), c.out.split(' ').map(Number), `${c.w}x${c.h} -> ${c.W}x${c.H}`);
  }
});

test('PIL convert("RGB") drops alpha; ToTensor rescale divides in float32', () => {
  const rgba = { data: new Uint8Array([10, 20, 30, 0, 40, 50, 60, 255]), width: 2, height: 1, channels: 4 as const };
  assert.deepEqual(Array.from(toRgbDropAlpha(rgba).data), [10, 20, 30, 40, 50, 60]);
  const gray = { data: new Uint8Array([7, 9]), width: 2, height: 1, channels: 1 as const };
  assert.deepEqual(Array.from(toRgbDropAlpha(gray).data), [7, 7, 7, 9, 9, 9]);
  const lut = normalizationTable({ rescaleFactor: 1 / 255, rescaleDivisor: 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  for (let v = 0; v < 256; v++) {
    const x = Math.fround(v / 255);
    assert.equal(lut[v], Math.fround(Math.fround(x - Math.fround(0.485)) / Math.fround(0.229)));
  }
});
