/**
 * The Idefics3 processor: geometry per tiler (pure), prompt expansion, pixels bit-exact against a Pillow
 * transcription of transformers' slow Idefics3ImageProcessor, and input_ids / tile grids equal to
 * Transformers.js' Idefics3Processor on the real SmolVLM-256M-Instruct files.
 *
 * The pixel goldens (sha256 of the float32 [frames, 3, 512, 512] bytes) were made with Pillow 9.4.0 + numpy
 * running transformers' steps literally: resize (longest edge 2048, even rounding, PIL LANCZOS; mode "P" for
 * 1-channel) → resize_for_vision_encoder → split_image (crops + LANCZOS global) → convert_to_rgb
 * (alpha_composite on white) → (x.astype(float64) · rescale_factor).astype(float32) → (x − mean) / std in float32.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Idefics3Processor, detailToPlanOptions, expandImageTokens, imagePixels, imagePromptString, parseProcessorConfig, planImage, resizeOutputSize,
  visionEncoderSize, type Idefics3ProcessorConfig, type Tiler,
} from '../../src/models/idefics3/processor.ts';
import { resizePil, type Channels, type PixelImage } from '../../src/input/resample.ts';
import { Tokenizer } from '../../src/input/tokenizer.ts';
import { isWebVLMError } from '../../src/errors.ts';

const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const DIR = `${MODELS}SmolVLM-256M-Instruct/`;
const SKIP = existsSync(`${DIR}tokenizer.json`) ? false : `no ${DIR} in this checkout`;
const read = (f: string) => readFileSync(DIR + f, 'utf8');

// SmolVLM-256M's preprocessor values (also checked against the real file below when present).
const CFG: Idefics3ProcessorConfig = parseProcessorConfig(
  { size: { longest_edge: 2048 }, max_image_size: { longest_edge: 512 }, resample: 1, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], rescale_factor: 1 / 255 },
  { image_seq_len: 64 },
);

function processor(): Idefics3Processor {
  const tok = Tokenizer.fromFiles({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json'), chatTemplate: read('chat_template.json') });
  return Idefics3Processor.fromFiles(tok, { preprocessorConfig: read('preprocessor_config.json'), processorConfig: read('processor_config.json') });
}

/** Same generator as tests/engine/resample.test.ts and the Python golden script. */
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

const code = (want: string) => (e: unknown) => isWebVLMError(e) && e.code === want;

// [w, h, model: [resizedW, resizedH, gridW, gridH, rows, cols, frames], native: [w, h, rows, cols, frames]]
// Model values computed with transformers' formulas in Python (int(), math.ceil on floats).
const GEOMETRY: Array<[number, number, number[], number[]]> = [
  [1, 1, [2048, 2048, 2048, 2048, 4, 4, 17], [512, 512, 0, 0, 1]],
  [1, 4000, [1, 2048, 512, 2048, 4, 1, 5], [512, 2048, 4, 1, 5]],
  [4000, 1, [2048, 1, 2048, 512, 1, 4, 5], [2048, 512, 1, 4, 5]],
  [300, 200, [2048, 1366, 2048, 1536, 3, 4, 13], [512, 512, 0, 0, 1]],
  [511, 513, [2040, 2048, 2048, 2048, 4, 4, 17], [1024, 1024, 2, 2, 5]],
  [512, 384, [2048, 1536, 2048, 1536, 3, 4, 13], [512, 512, 0, 0, 1]],
  [512, 512, [2048, 2048, 2048, 2048, 4, 4, 17], [512, 512, 0, 0, 1]],
  [513, 511, [2048, 2040, 2048, 2048, 4, 4, 17], [1024, 1024, 2, 2, 5]],
  [640, 480, [2048, 1536, 2048, 1536, 3, 4, 13], [1024, 1024, 2, 2, 5]],
  [1024, 768, [2048, 1536, 2048, 1536, 3, 4, 13], [1024, 1024, 2, 2, 5]],
  [1920, 1080, [2048, 1152, 2048, 1536, 3, 4, 13], [2048, 1536, 3, 4, 13]],
  [2048, 1536, [2048, 1536, 2048, 1536, 3, 4, 13], [2048, 1536, 3, 4, 13]],
  [4096, 4096, [2048, 2048, 2048, 2048, 4, 4, 17], [2048, 2048, 4, 4, 17]],
  [20000, 10, [2048, 2, 2048, 512, 1, 4, 5], [2048, 512, 1, 4, 5]],
  [10, 20000, [2, 2048, 512, 2048, 4, 1, 5], [512, 2048, 4, 1, 5]],
  [100000, 1, [2048, 1, 2048, 512, 1, 4, 5], [2048, 512, 1, 4, 5]],
];

test('geometry: model and native tilers over many sizes, with token counts', () => {
  for (const [w, h, m, n] of GEOMETRY) {
    const pm = planImage(w, h, CFG, 'model');
    assert.deepEqual(pm.resizes, [{ width: m[0], height: m[1] }, { width: m[2], height: m[3] }], `${w}×${h} model resizes`);
    assert.deepEqual([pm.rows, pm.cols, pm.frames, pm.visualTokens], [m[4], m[5], m[6], m[6] * 64], `${w}×${h} model grid`);
    assert.equal(pm.tiles.length, m[4] * m[5]);
    const pn = planImage(w, h, CFG, 'native');
    assert.deepEqual([pn.resized.width, pn.resized.height, pn.rows, pn.cols, pn.frames, pn.visualTokens], [...n, n[4] * 64], `${w}×${h} native`);
    // Native never upscales to the 2048 edge: its grid is never larger than the model's.
    assert.ok(pn.frames <= pm.frames);
    const pg = planImage(w, h, CFG, 'global');
    assert.deepEqual([pg.rows, pg.cols, pg.frames, pg.visualTokens, pg.resizes.length], [0, 0, 1, 64, 1], `${w}×${h} global`);
    assert.deepEqual(pg.tiles, [[0, 0, w, h]]);
  }
  // Tiles cover the source image row-major in source coordinates.
  assert.deepEqual(planImage(1024, 768, CFG, 'model').tiles.slice(0, 5), [[0, 0, 256, 256], [256, 0, 256, 256], [512, 0, 256, 256], [768, 0, 256, 256], [0, 256, 256, 256]]);
});

test('geometry: size rules (even rounding, 4096 cap, vision-encoder multiples) and the token budget', () => {
  assert.deepEqual(resizeOutputSize(3001, 1000, 2048), { width: 2048, height: 682 });
  assert.deepEqual(resizeOutputSize(1000, 3001, 2048), { width: 682, height: 2048 });
  assert.deepEqual(resizeOutputSize(2047, 1023, 2048), { width: 2048, height: 1024 }, 'int(1023.5) = 1023 is odd → 1024');
  assert.deepEqual(resizeOutputSize(6000, 3000, 6000), { width: 4096, height: 2048 }, 'cap at MAX_IMAGE_SIZE');
  assert.deepEqual(resizeOutputSize(3000, 6001, 6000), { width: 2048, height: 4096 });
  assert.deepEqual(visionEncoderSize(2048, 1366, 512), { width: 2048, height: 1536 });
  assert.deepEqual(visionEncoderSize(600, 1100, 512), { width: 1024, height: 1536 });
  // maxImageTokens: the largest grid (longest edge k·512) whose frames fit.
  const b = (w: number, h: number, budget: number, tiler: Tiler = 'model') => {
    const p = planImage(w, h, CFG, { tiler, maxImageTokens: budget });
    return [p.rows, p.cols, p.frames, p.visualTokens, p.budgetLimited];
  };
  assert.deepEqual(b(2048, 1536, 832), [3, 4, 13, 832, false]);
  assert.deepEqual(b(2048, 1536, 831), [3, 3, 10, 640, true]);
  assert.deepEqual(b(2048, 1536, 400), [2, 2, 5, 320, true]);
  assert.deepEqual(b(2048, 1536, 319), [0, 0, 1, 64, true]);
  assert.deepEqual(b(4096, 4096, 1087), [3, 3, 10, 640, true]);
  assert.deepEqual(b(300, 200, 700), [2, 3, 7, 448, true]);
  assert.deepEqual(b(1024, 768, 300, 'native'), [0, 0, 1, 64, true]);
  assert.deepEqual(b(1920, 1080, 700, 'native'), [2, 3, 7, 448, true]);
  assert.throws(() => planImage(100, 100, CFG, { maxImageTokens: 63 }), code('InvalidArgument'));
  assert.deepEqual(detailToPlanOptions('low'), { tiler: 'global', maxImageTokens: undefined });
  assert.deepEqual(detailToPlanOptions('auto', 500), { tiler: 'native', maxImageTokens: 500 });
  assert.deepEqual(detailToPlanOptions('high'), { tiler: 'model', maxImageTokens: undefined });
  assert.throws(() => detailToPlanOptions('ultra'), code('InvalidArgument'));
  assert.throws(() => planImage(10, 10, { ...CFG, doImageSplitting: false }, 'tiles' as Tiler), code('InvalidArgument'));
  assert.throws(() => planImage(0, 5, CFG), code('InvalidImage'));
  assert.throws(() => planImage(5, 2.5, CFG), code('InvalidImage'));
  // do_image_splitting = false: the model resizes to the longest edge, then to one 512×512 frame.
  const noSplit = planImage(700, 500, { ...CFG, doImageSplitting: false }, 'model');
  assert.deepEqual([noSplit.resizes, noSplit.frames], [[{ width: 2048, height: 1462 }, { width: 512, height: 512 }], 1]);
});

test('prompt expansion: split and single-frame forms, several images', () => {
  const run = '<image>'.repeat(3);
  assert.equal(imagePromptString({ rows: 0, cols: 0 }, 3), `<fake_token_around_image><global-img>${run}<fake_token_around_image>`);
  assert.equal(
    imagePromptString({ rows: 2, cols: 2 }, 3),
    `<fake_token_around_image><row_1_col_1>${run}<fake_token_around_image><row_1_col_2>${run}\n` +
      `<fake_token_around_image><row_2_col_1>${run}<fake_token_around_image><row_2_col_2>${run}\n` +
      `\n<fake_token_around_image><global-img>${run}<fake_token_around_image>`,
  );
  const s = expandImageTokens('A<image>B<image>C', [{ rows: 0, cols: 0 }, { rows: 1, cols: 2 }], 1);
  assert.equal(s, 'A<fake_token_around_image><global-img><image><fake_token_around_image>B<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n\n<fake_token_around_image><global-img><image><fake_token_around_image>C');
  assert.throws(() => expandImageTokens('no image here', [{ rows: 0, cols: 0 }], 64), code('InvalidArgument'));
  assert.throws(() => expandImageTokens('<image><image>', [{ rows: 0, cols: 0 }], 64), code('InvalidArgument'));
});

// [w, h, channels, do_image_splitting] (seed w + h) → [rows, cols, frames], sha256 of float32 bytes, first 4 values.
const HF_PIXEL_GOLDENS: Array<[[number, number, Channels, boolean], number[], string, number[]]> = [
  [[300, 200, 3, true], [3, 4, 13], '67ad196bc5359a93102d2e60b9e982eee272b0e4d288fa17c3c943a4c2a1e19d', [-0.6941176652908325, -0.6941176652908325, -0.686274528503418, -0.6784313917160034]],
  [[37, 23, 4, true], [3, 4, 13], 'd9fbfd5cf3e017f05909ed02637f050f77d030b547f0dd66db49b946588d6f1b', [0.7333333492279053, 0.7333333492279053, 0.7333333492279053, 0.7333333492279053]],
  [[4000, 10, 3, true], [1, 4, 5], '50d9537c83668ee09e424406b3eaa827ef1bf6060b3326fcf8b3bfa8d61a9794', [-0.8666666746139526, -0.7098039388656616, -0.7490196228027344, -0.7568627595901489]],
  [[19, 7, 1, true], [2, 4, 9], 'a342238848770ea4dcc2405ab9794b0abb96bbf4f72bed51db0eb70924111a19', [-0.8274509906768799, -0.8274509906768799, -0.8274509906768799, -0.8274509906768799]],
  [[700, 500, 4, false], [0, 0, 1], 'ab5f600f3a5bcaa06f9aecac5200302655edec8e52c57d301b5057eddb424f3e', [1, 1, 0.9921568632125854, 0.9215686321258545]],
];

test('pixels: bit-exact with transformers (slow processor) + Pillow for RGB, RGBA, gray, extreme aspect, no split', () => {
  for (const [[w, h, c, split], [rows, cols, frames], hash, head] of HF_PIXEL_GOLDENS) {
    const cfg = { ...CFG, doImageSplitting: split };
    const plan = planImage(w, h, cfg, 'model');
    assert.deepEqual([plan.rows, plan.cols, plan.frames], [rows, cols, frames]);
    const px = imagePixels(synth(w, h, c, w + h), plan, cfg);
    assert.equal(px.length, frames * 3 * 512 * 512);
    assert.deepEqual(Array.from(px.subarray(0, 4)), head, `${w}×${h}×${c}: first values`);
    assert.equal(createHash('sha256').update(new Uint8Array(px.buffer)).digest('hex'), hash, `${w}×${h}×${c}: sha256 of pixel_values`);
  }
});

test('pixels: native / global frames, and the processor over several images with per-image detail', { skip: SKIP }, () => {
  const p = processor();
  assert.deepEqual(p.config, CFG, 'the real preprocessor files give the values used above');
  const a = synth(300, 200, 4, 3);
  const b = synth(640, 480, 3, 4);
  const c = synth(40, 10, 3, 5); // model tiling of a strip: 2048×512, 1×4 tiles + global (cheap to resample)
  const out = p.processChat(
    [
      { role: 'user', content: [{ type: 'image', detail: 'low' }, { type: 'text', text: 'and' }, { type: 'image_url', image_url: { url: 'x', detail: 'auto' } }] },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'third?' }] },
    ],
    [a, b, c],
  );
  assert.deepEqual(out.images.map((r) => [r.mode, r.rows, r.cols, r.frames]), [['global', 0, 0, 1], ['native', 2, 2, 5], ['model', 1, 4, 5]]);
  assert.deepEqual(out.pixelShape, [11, 3, 512, 512]);
  assert.equal(out.inputIds.filter((id) => id === 49190).length, 11 * 64, 'one <image> id per visual token');
  // The 'global' frame is one direct Lanczos resize of the source to 512×512.
  const g = imagePixels(resizePil(a, 512, 512), planImage(512, 512, CFG, 'global'), CFG);
  assert.deepEqual(out.pixelValues.subarray(0, 3 * 512 * 512), g);
  // The third image equals processing it alone.
  const alone = p.process('<image>', [c]);
  assert.deepEqual(out.pixelValues.subarray(6 * 3 * 512 * 512), alone.pixelValues);
  assert.throws(() => p.processChat([{ role: 'user', content: [{ type: 'image' }] }], []), code('InvalidArgument'));
  assert.throws(() => p.process('<image>', [{ data: new Uint8Array(3), width: 2, height: 2, channels: 3 }]), code('InvalidImage'));
});

async function transformersJsProcessor() {
  const { env, AutoProcessor, RawImage } = await import('@huggingface/transformers');
  env.localModelPath = MODELS;
  env.allowRemoteModels = false;
  return { tp: await AutoProcessor.from_pretrained('SmolVLM-256M-Instruct'), RawImage };
}

test('input_ids and tile grids equal Transformers.js Idefics3Processor; pixel agreement measured', { skip: SKIP }, async (t) => {
  const p = processor();
  const { tp, RawImage } = await transformersJsProcessor();
  const per = 3 * 512 * 512;
  for (const [w, h] of [[1, 1], [300, 200], [512, 512], [513, 511], [1024, 768], [2048, 1536], [4000, 10]]) {
    const img = synth(w, h, 3, 1);
    const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Can you describe this image?' }] }];
    const ours = p.processChat(messages, [img]);
    const text = tp.apply_chat_template(messages, { add_generation_prompt: true });
    const theirs = await tp(text, [new RawImage(new Uint8ClampedArray(img.data), w, h, 3)]);
    const ids = Array.from(theirs.input_ids.data as BigInt64Array, Number);
    assert.deepEqual(ours.inputIds, ids, `${w}×${h}: input_ids`);
    assert.deepEqual([ours.images[0].rows, ours.images[0].cols], [theirs.rows[0][0], theirs.cols[0][0]], `${w}×${h}: grid`);
    assert.deepEqual([1, ...ours.pixelShape], theirs.pixel_values.dims, `${w}×${h}: pixel_values shape`);
    // Transformers.js resizes with sharp (lanczos3) to its own (non-even-rounded) size, then bilinear on the
    // normalised floats for the tile multiple and the global frame (no antialias), so values differ where
    // anything is resampled; [-1, 1] range, bounds are sanity limits only. Exact where nothing is resampled.
    const tv = theirs.pixel_values.data as Float32Array;
    let max = 0;
    let sum = 0;
    const exactFrames: number[] = [];
    for (let f = 0; f < ours.pixelShape[0]; f++) {
      let fmax = 0;
      for (let i = f * per; i < (f + 1) * per; i++) {
        const d = Math.abs(tv[i] - ours.pixelValues[i]);
        sum += d;
        if (d > fmax) fmax = d;
      }
      if (fmax === 0) exactFrames.push(f);
      max = Math.max(max, fmax);
    }
    const mean = sum / ours.pixelValues.length;
    t.diagnostic(`${w}×${h}: ids ${ids.length} exact, grid ${ours.images[0].rows}×${ours.images[0].cols}, pixels vs Transformers.js max |Δ| ${max.toFixed(4)}, mean |Δ| ${mean.toFixed(5)}, bit-exact frames ${exactFrames.length}/${ours.pixelShape[0]}`);
    assert.ok(max <= 1.5 && mean <= 0.15, `${w}×${h}: max ${max}, mean ${mean}`);
    if (w === 1) assert.equal(exactFrames.length, 17, '1×1: a constant image is exact everywhere');
    if (w === 2048) assert.deepEqual(exactFrames, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], '2048×1536: tiles are crops of the unresized image');
  }
});

test('several images in one prompt and across turns: input_ids equal Transformers.js', { skip: SKIP }, async () => {
  const p = processor();
  const { tp, RawImage } = await transformersJsProcessor();
  const a = synth(300, 200, 3, 7);
  const b = synth(4000, 10, 3, 8);
  const raw = (x: PixelImage) => new RawImage(new Uint8ClampedArray(x.data), x.width, x.height, 3);
  const messages = [
    { role: 'user', content: [{ type: 'image' as const }, { type: 'image' as const }, { type: 'text' as const, text: 'What differs? 🤔' }] },
    { role: 'assistant', content: [{ type: 'text' as const, text: 'The second is a thin strip.' }] },
    { role: 'user', content: [{ type: 'text' as const, text: 'And this one?' }, { type: 'image' as const }] },
  ];
  const ours = p.processChat(messages, [a, b, a]);
  const theirs = await tp(tp.apply_chat_template(messages, { add_generation_prompt: true }), [raw(a), raw(b), raw(a)]);
  assert.deepEqual(ours.inputIds, Array.from(theirs.input_ids.data as BigInt64Array, Number));
  assert.deepEqual(ours.images.map((r) => [r.rows, r.cols]), theirs.rows[0].map((r: number, i: number) => [r, theirs.cols[0][i]]));
  assert.deepEqual([1, ...ours.pixelShape], theirs.pixel_values.dims);
});
