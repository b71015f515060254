/**
 * The InternVL processor (src/models/internvl/processor.ts) with the real InternVL3 tokenizer files
 * (shared/models/InternVL3-2B, shared by the 1B): chat template, prompt expansion, input ids, tiling plans and
 * pixels (the Pillow path: RGB, BICUBIC grid resize, row-major tiles, thumbnail, ImageNet normalisation).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { internvl3Tokenizer, INTERNVL3_DIR } from '../helpers/qwen2-tokenizer.ts';
import { parseInternVLConfig } from '../../src/models/internvl/config.ts';
import { imagePixels, InternVLProcessor, internvlProcessorConfig, planImage } from '../../src/models/internvl/processor.ts';
import { internvlFamily } from '../../src/models/internvl/index.ts';
import { normalizationTable, resizeBicubicRaw, toRgbDropAlpha } from '../../src/input/resample.ts';
import { internvlConfigJson, internvlPreprocessorJson } from '../../models/make-internvl.ts';

const SYSTEM = '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。';

function testImage(width: number, height: number) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 4;
    data.set([(x * 255) / width, (y * 255) / height, ((x >> 3) ^ (y >> 3)) & 1 ? 230 : 20, 128 + ((x + y) & 127)], i);
  }
  return { width, height, channels: 4 as const, data };
}

const tok = internvl3Tokenizer();
const skip = tok ? false : `no tokenizer files at ${INTERNVL3_DIR}`;

test('tokenizer: InternVL3 special ids; vocab.json ids for plain text', { skip }, () => {
  const t = tok!;
  assert.deepEqual(['<|im_start|>', '<|im_end|>', '<img>', '</img>', '<IMG_CONTEXT>'].map((s) => t.tokenToId(s)), [151644, 151645, 151665, 151666, 151667]);
  const vocab = JSON.parse(readFileSync(INTERNVL3_DIR + 'vocab.json', 'utf8')) as Record<string, number>;
  // Byte-level BPE: Ġ = space, Ċ = newline; the Qwen2 split keeps punctuation with its trailing newline (".Ċ").
  assert.deepEqual(t.encode('Describe the image.\n'), [vocab['Describe'], vocab['Ġthe'], vocab['Ġimage'], vocab['.Ċ']]);
});

test('original layout: template with the default system message, <image> → <img> + 256·frames <IMG_CONTEXT> + </img>', { skip }, () => {
  const cfg = parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original'));
  const proc = internvlFamily.createProcessor(tok!, { config: {}, preprocessorConfig: internvlPreprocessorJson('internvl3-1b', 'original'), processorConfig: null }, cfg) as InternVLProcessor;
  internvlFamily.checkConsistency(cfg, tok!, proc);
  const img = testImage(800, 600);
  const out = proc.processChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe the image.' }] }], [img], { pixels: false });
  assert.equal(out.images[0].frames, 13, '4×3 tiles + thumbnail');
  assert.deepEqual([out.images[0].cols, out.images[0].rows], [4, 3]);
  const ctx = '<IMG_CONTEXT>'.repeat(256 * 13);
  assert.equal(out.prompt, `<|im_start|>system\n${SYSTEM}<|im_end|>\n<|im_start|>user\n<img>${ctx}</img>\nDescribe the image.<|im_end|>\n<|im_start|>assistant\n`);
  const ids = out.inputIds;
  const sys = tok!.encode(`system\n${SYSTEM}`);
  const head = [151644, ...sys, 151645, ...tok!.encode('\n'), 151644, ...tok!.encode('user\n'), 151665];
  assert.deepEqual(ids.slice(0, head.length), head);
  assert.equal(ids.filter((x) => x === 151667).length, 256 * 13);
  const tail = [151666, ...tok!.encode('\nDescribe the image.'), 151645, ...tok!.encode('\n'), 151644, ...tok!.encode('assistant\n')];
  assert.deepEqual(ids.slice(ids.length - tail.length), tail);
  assert.equal(ids.length, head.length + 256 * 13 + tail.length);
  // A system message replaces the default one; text-only turns have no image tokens.
  const t2 = proc.processChat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], []);
  assert.equal(t2.prompt, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
});

test('native layout: the placeholder is <IMG_CONTEXT> itself (InternVLProcessor), expanded the same way', { skip }, () => {
  const cfg = parseInternVLConfig(internvlConfigJson('internvl3-1b', 'native'));
  // The -hf chat template renders an image part as <IMG_CONTEXT>\n and has no default system turn.
  const template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}";
  const t = internvl3Tokenizer(template)!;
  const proc = new InternVLProcessor(t, internvlProcessorConfig(cfg, internvlPreprocessorJson('internvl3-1b', 'native')));
  const out = proc.processChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What?' }] }], [testImage(448, 448)], { pixels: false });
  assert.equal(out.prompt, `<|im_start|>user\n<img>${'<IMG_CONTEXT>'.repeat(256)}</img>\nWhat?<|im_end|>\n<|im_start|>assistant\n`);
  assert.equal(out.images[0].frames, 1, 'a 1×1 grid is one frame, no thumbnail');
});

test('plans: grids, thumbnail, global, token budget', () => {
  const cfg = internvlProcessorConfig(parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original')), null);
  const p = (w: number, h: number, o = {}) => planImage(w, h, cfg, o);
  assert.deepEqual([p(1000, 400).cols, p(1000, 400).rows, p(1000, 400).frames], [5, 2, 11]);
  assert.deepEqual(p(1000, 400).resized, { width: 2240, height: 896 });
  assert.deepEqual([p(300, 300).frames, p(300, 300).rows], [1, 0]);
  assert.equal(p(800, 600, { tiler: 'global' }).frames, 1);
  const b = p(800, 600, { maxImageTokens: 256 * 7 });
  assert.ok(b.budgetLimited && b.frames * 256 <= 256 * 7, `${b.frames} frames`);
  // Cap 6 tiles: 3×2 (1.5) is the closest to 4:3 → 6 tiles + thumbnail = 7 frames.
  assert.deepEqual([b.cols, b.rows, b.frames], [3, 2, 7]);
});

test('pixels: tiles are crops of one BICUBIC grid resize, the thumbnail a direct resize; ToTensor/Normalize values', () => {
  const cfg = internvlProcessorConfig(parseInternVLConfig(internvlConfigJson('test', 'original')), null);
  const img = testImage(150, 100);
  const plan = planImage(150, 100, cfg);
  assert.deepEqual([plan.cols, plan.rows, plan.frames, cfg.tileSize], [3, 2, 7, 56]);
  const px = imagePixels(img, plan, cfg);
  const rgb = toRgbDropAlpha(img);
  const big = resizeBicubicRaw(rgb, 168, 112), thumb = resizeBicubicRaw(rgb, 56, 56);
  const lut = normalizationTable({ rescaleFactor: 1 / 255, rescaleDivisor: 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  const M = 56, per = 3 * M * M;
  let mismatches = 0;
  for (let f = 0; f < 7; f++) for (let c = 0; c < 3; c++) for (let y = 0; y < M; y++) for (let x = 0; x < M; x++) {
    const src = f < 6 ? big.data[((Math.floor(f / 3) * M + y) * 168 + (f % 3) * M + x) * 3 + c] : thumb.data[(y * M + x) * 3 + c];
    if (px[f * per + c * M * M + y * M + x] !== lut[c * 256 + src]) mismatches++;
  }
  assert.equal(mismatches, 0);
  // Alpha is dropped (PIL convert('RGB')), not composited: this image is half transparent.
  assert.equal(px[0], lut[big.data[0]]);
});

test('two images: placeholders expand in order with each image\'s own frame count; a count mismatch is InvalidArgument', { skip }, () => {
  const cfg = parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original'));
  const proc = new InternVLProcessor(tok!, internvlProcessorConfig(cfg, null));
  const out = proc.processChat([{ role: 'user', content: [{ type: 'image' }, { type: 'image' }, { type: 'text', text: 'Compare.' }] }], [testImage(448, 448), testImage(900, 448)], { pixels: false });
  assert.deepEqual(out.images.map((p) => p.frames), [1, 3]);
  const runs: number[] = [];
  let n = 0;
  for (const id of out.inputIds) {
    if (id === 151667) n++;
    else if (n) runs.push(n), (n = 0);
  }
  assert.deepEqual(runs, [256, 768]);
  assert.ok(out.prompt.includes(`</img>\n<img>`), 'the template writes "<image>\\n" per image part');
  assert.throws(() => proc.process('no placeholder', [{ image: testImage(10, 10) }]), (e: unknown) => (e as { code?: string }).code === 'InvalidArgument');
});
