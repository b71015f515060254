/**
 * The SmolVLM processor on SmolVLM2's files (models/smolvlm2/, tokenizer files of SmolVLM-256M-Instruct: see
 * models/smolvlm2/README.md): input_ids of a known prompt derived by hand from the chat template, the prompt expansion
 * (processing_smolvlm.py `_prompt_split_image`) and tokenizer.json, then cross-checked with Transformers.js'
 * SmolVLMProcessor; pixels bit-exact with the Pillow path at the 2.2B's geometry (384-px tiles, longest edge 1536);
 * the file checks.
 *
 * The 2.2B pixel goldens (sha256 of the float32 [frames, 3, 384, 384] bytes) were made with Pillow 9.4.0 + numpy by
 * models/tiny/processor.py (a transcription of transformers' slow Idefics3ImageProcessor, of which
 * SmolVLMImageProcessor is a copy) on SmolVLM2-2.2B-Instruct's preprocessor_config.json, from the synthetic images
 * of `synth` below (the same generator as tests/engine/idefics3-processor.test.ts, whose 512-px goldens the same
 * script reproduces).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SmolVLMProcessor, checkSmolVLMFiles } from '../../src/models/smolvlm/processor.ts';
import { imagePixels, parseProcessorConfig, planImage } from '../../src/models/idefics3/processor.ts';
import { Tokenizer } from '../../src/input/tokenizer.ts';
import { isWebVLMError } from '../../src/errors.ts';
import type { Channels, PixelImage } from '../../src/input/resample.ts';
import { SMOLVLM2_REPOS, writeSmolVLM2Files, type SmolVLM2Variant } from '../../models/make-smolvlm2.ts';

const SHARED = fileURLToPath(new URL('../../../shared/models/SmolVLM-256M-Instruct/', import.meta.url));
const SKIP = existsSync(`${SHARED}tokenizer.json`) ? false : `no ${SHARED} in this checkout`;
const code = (want: string) => (e: unknown) => isWebVLMError(e) && e.code === want;

let root = '';
before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'webvlm-smolvlm-proc-'));
  for (const v of ['256m', '500m', '2.2b'] as const) await writeSmolVLM2Files(v, join(root, SMOLVLM2_REPOS[v]));
});
after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const read = (v: Exclude<SmolVLM2Variant, 'test'>, f: string) => readFileSync(join(root, SMOLVLM2_REPOS[v], f), 'utf8');

function processor(v: Exclude<SmolVLM2Variant, 'test'>): SmolVLMProcessor {
  const tok = Tokenizer.fromFiles({ tokenizerJson: read(v, 'tokenizer.json'), tokenizerConfig: read(v, 'tokenizer_config.json'), chatTemplate: read(v, 'chat_template.json') });
  return SmolVLMProcessor.create(tok, {
    preprocessorConfig: read(v, 'preprocessor_config.json'), processorConfig: read(v, 'processor_config.json'),
    modelConfig: read(v, 'config.json'), tokenizerConfig: read(v, 'tokenizer_config.json'),
  });
}

/** Same generator as tests/engine/idefics3-processor.test.ts and the Python golden script. */
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

const describeMessages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Can you describe this image?' }] }];

test('input_ids of a known prompt, derived by hand from the template, the expansion and the vocabulary', { skip: SKIP }, () => {
  const p = processor('256m');
  const out = p.processChat(describeMessages, [synth(300, 200, 3, 1)]);
  assert.deepEqual([out.images[0].rows, out.images[0].cols, out.pixelShape], [3, 4, [13, 3, 512, 512]], '300×200 → 2048×1366 → 2048×1536: 3×4 tiles + global');
  // Template: "<|im_start|>" + "User" + ":" (content[0] is an image: no space) + "<image>" + text + "<end_of_utterance>\n" + "Assistant:".
  // Expansion per row r, column c: <fake_token_around_image><row_r_col_c><image>×64, "\n" after each row, then
  // "\n<fake_token_around_image><global-img><image>×64<fake_token_around_image>" — the last row's "\n" and that "\n"
  // meet as "\n\n", one token. Ids from vocab.json / added_tokens.json (ByteLevel BPE; Ġ = space, Ċ = \n):
  const V = { imStart: 1, User: 11126, colon: 42, nl: 198, nlnl: 1116, Ass: 9519, istant: 9531, Can: 7306, you: 346, describe: 5125, this: 451, image: 2443, q: 47 };
  const FAKE = 49189, IMAGE = 49190, GLOBAL = 49152, EOU = 49279;
  const rowCol = (r: number, c: number) => GLOBAL + (r - 1) * 6 + c; // <row_1_col_1> = 49153 … <row_6_col_6> = 49188
  const run = Array<number>(64).fill(IMAGE);
  const want = [V.imStart, V.User, V.colon];
  for (let r = 1; r <= 3; r++) {
    for (let c = 1; c <= 4; c++) want.push(FAKE, rowCol(r, c), ...run);
    if (r < 3) want.push(V.nl);
  }
  want.push(V.nlnl, FAKE, GLOBAL, ...run, FAKE);
  // "Can you describe this image?" → Can, Ġyou, Ġdescribe, Ġthis, Ġimage, ? (each a vocabulary entry); "Assistant" →
  // Ass + istant (merges "A ss", "ist ant"; no "Ass istant" merge).
  want.push(V.Can, V.you, V.describe, V.this, V.image, V.q, EOU, V.nl, V.Ass, V.istant, V.colon);
  assert.equal(out.inputIds.length, want.length);
  assert.deepEqual(out.inputIds, want);
  assert.equal(out.prompt.startsWith('<|im_start|>User:<fake_token_around_image><row_1_col_1><image>'), true);
  assert.equal(out.prompt.endsWith('<fake_token_around_image>Can you describe this image?<end_of_utterance>\nAssistant:'), true);
});

test('the chat template renders as transformers renders it for SmolVLM2-256M (tests/models/smolvlm test_apply_chat_template)', { skip: SKIP }, () => {
  const tok = processor('256m').tokenizer;
  const rendered = tok.applyChatTemplate([
    { role: 'user', content: [{ type: 'text', text: 'What do these images show?' }, { type: 'image' }, { type: 'image' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'The first image shows the statue of Liberty in New York.' }] },
    { role: 'user', content: [{ type: 'text', text: 'And who is that?' }] },
  ], { addGenerationPrompt: true });
  assert.equal(rendered,
    '<|im_start|>User: What do these images show?<image><image><end_of_utterance>\n' +
    'Assistant: The first image shows the statue of Liberty in New York.<end_of_utterance>\n' +
    'User: And who is that?<end_of_utterance>\nAssistant:');
});

async function transformersJs(v: Exclude<SmolVLM2Variant, 'test'>) {
  const { env, AutoProcessor, RawImage } = await import('@huggingface/transformers');
  env.localModelPath = `${root}/`;
  env.allowRemoteModels = false;
  return { tp: await AutoProcessor.from_pretrained(SMOLVLM2_REPOS[v]), RawImage };
}

test('input_ids and tile grids equal Transformers.js SmolVLMProcessor (256M and 2.2B files)', { skip: SKIP }, async () => {
  for (const v of ['256m', '2.2b'] as const) {
    const p = processor(v);
    const { tp, RawImage } = await transformersJs(v);
    const raw = (x: PixelImage) => new RawImage(new Uint8ClampedArray(x.data), x.width, x.height, 3);
    for (const [w, h] of [[300, 200], [1000, 10], [40, 700]]) {
      const img = synth(w, h, 3, 1);
      const ours = p.processChat(describeMessages, [img]);
      const theirs = await tp(tp.apply_chat_template(describeMessages, { add_generation_prompt: true }), [raw(img)]);
      assert.deepEqual(ours.inputIds, Array.from(theirs.input_ids.data as BigInt64Array, Number), `${v} ${w}×${h}: input_ids`);
      assert.deepEqual([ours.images[0].rows, ours.images[0].cols], [theirs.rows[0][0], theirs.cols[0][0]], `${v} ${w}×${h}: grid`);
      assert.deepEqual([1, ...ours.pixelShape], theirs.pixel_values.dims, `${v} ${w}×${h}: pixel_values shape`);
    }
    // Several images across turns.
    const a = synth(300, 200, 3, 7), b = synth(1000, 10, 3, 8);
    const messages = [
      { role: 'user', content: [{ type: 'image' as const }, { type: 'image' as const }, { type: 'text' as const, text: 'What differs? 🤔' }] },
      { role: 'assistant', content: [{ type: 'text' as const, text: 'The second is a thin strip.' }] },
      { role: 'user', content: [{ type: 'text' as const, text: 'And this one?' }, { type: 'image' as const }] },
    ];
    const ours = p.processChat(messages, [a, b, a]);
    const theirs = await tp(tp.apply_chat_template(messages, { add_generation_prompt: true }), [raw(a), raw(b), raw(a)]);
    assert.deepEqual(ours.inputIds, Array.from(theirs.input_ids.data as BigInt64Array, Number), `${v}: several images`);
  }
});

// [w, h, channels, do_image_splitting] (seed w + h) → [rows, cols, frames], sha256 of float32 bytes, first 4 values.
const PIL_GOLDENS_2_2B: Array<[[number, number, Channels, boolean], number[], string, number[]]> = [
  [[300, 200, 3, true], [3, 4, 13], 'b7de3e304a2c7c31dc0ef1a5b7e28537e853ed2fcc824a5941caf60f11b6df2a', [-0.6941176652908325, -0.686274528503418, -0.6784313917160034, -0.6627451181411743]],
  [[37, 23, 4, true], [3, 4, 13], '6c75803e671e62af7ffc15b37077807737533697d4065b9c02cff55601db6e84', [0.7333333492279053, 0.7333333492279053, 0.7333333492279053, 0.7333333492279053]],
  [[1000, 10, 3, true], [1, 4, 5], '39a576dff1aeb4c6cddae93ee39bcb1c345b82516520648a8bd3e198bd463831', [-0.4745097756385803, -0.5921568870544434, -0.8352941274642944, -1]],
  [[500, 700, 4, false], [0, 0, 1], '77edddcba11f06765155b31f556d8346017819677da52aff1680358f72f5b2d6', [1, 1, 0.9843137264251709, 0.9372549057006836]],
];

test('pixels: 2.2B geometry (384-px tiles, edge 1536) bit-exact with the Pillow path; 256M/500M values = SmolVLM-1\'s', { skip: SKIP }, () => {
  const p22 = processor('2.2b');
  assert.deepEqual([p22.config.tileSize, p22.config.longestEdge, p22.config.imageSeqLen], [384, 1536, 81]);
  for (const [[w, h, c, split], [rows, cols, frames], hash, head] of PIL_GOLDENS_2_2B) {
    const cfg = { ...p22.config, doImageSplitting: split };
    const plan = planImage(w, h, cfg, 'model');
    assert.deepEqual([plan.rows, plan.cols, plan.frames], [rows, cols, frames], `${w}×${h}: grid`);
    const px = imagePixels(synth(w, h, c, w + h), plan, cfg);
    assert.equal(px.length, frames * 3 * 384 * 384);
    assert.deepEqual(Array.from(px.subarray(0, 4)), head, `${w}×${h}×${c}: first values`);
    assert.equal(createHash('sha256').update(new Uint8Array(px.buffer)).digest('hex'), hash, `${w}×${h}×${c}: sha256 of pixel_values`);
  }
  // SmolVLM2-256M/500M preprocess exactly as SmolVLM-256M-Instruct (whose Pillow goldens idefics3-processor.test.ts checks).
  const v1 = parseProcessorConfig(readFileSync(`${SHARED}preprocessor_config.json`, 'utf8'), readFileSync(`${SHARED}processor_config.json`, 'utf8'));
  assert.deepEqual(processor('256m').config, v1);
  assert.deepEqual(processor('500m').config, v1);
});

test('file checks: processor classes and token strings SmolVLM\'s rules do not implement are refused', { skip: SKIP }, () => {
  const pre = JSON.parse(read('256m', 'preprocessor_config.json'));
  const proc = JSON.parse(read('256m', 'processor_config.json'));
  const tc = JSON.parse(read('256m', 'tokenizer_config.json'));
  assert.doesNotThrow(() => checkSmolVLMFiles({ preprocessorConfig: pre, processorConfig: proc, tokenizerConfig: tc }));
  assert.doesNotThrow(() => checkSmolVLMFiles({ preprocessorConfig: { ...pre, image_processor_type: 'Idefics3ImageProcessor', processor_class: 'Idefics3Processor' } }));
  assert.doesNotThrow(() => checkSmolVLMFiles({ preprocessorConfig: pre, tokenizerConfig: { ...tc, extra_special_tokens: { image_token: { content: '<image>', special: true } } } }), 'an AddedToken dict naming <image>');
  assert.throws(() => checkSmolVLMFiles({ preprocessorConfig: { ...pre, image_processor_type: 'SiglipImageProcessor' } }), code('UnsupportedModel'));
  assert.throws(() => checkSmolVLMFiles({ preprocessorConfig: pre, processorConfig: { ...proc, processor_class: 'Qwen2VLProcessor' } }), code('UnsupportedModel'));
  assert.throws(() => checkSmolVLMFiles({ preprocessorConfig: pre, tokenizerConfig: { ...tc, extra_special_tokens: { ...tc.extra_special_tokens, image_token: '<img>' } } }), code('UnsupportedModel'));
  assert.throws(() => checkSmolVLMFiles({ preprocessorConfig: pre, tokenizerConfig: { ...tc, extra_special_tokens: {}, global_image_token: '<global>' } }), code('UnsupportedModel'));
  // Compression keeps the SmolVLM processor (withTokensPerFrame).
  const p = processor('256m').withTokensPerFrame(16);
  assert.ok(p instanceof SmolVLMProcessor);
  assert.equal(p.config.imageSeqLen, 16);
  assert.equal(p.process('<image>', [synth(10, 10, 3)], { tiler: 'global' }).inputIds.filter((x) => x === 49190).length, 16);
});
