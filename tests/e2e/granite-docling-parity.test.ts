/**
 * Granite-Docling-258M's layout end to end on the GPU (Node, Dawn/lavapipe) against the f64 reference: the CI variant
 * of models/make-granite-docling.ts (the genuine config, tokenizer and processor files at small widths: 256-px tiles
 * of 16-px patches, pixel shuffle ×4, tied embeddings, the real 100,352-token vocabulary and special ids) is loaded
 * through the engine's loader, then
 *  - the prompt: the Granite chat template + Idefics3 image expansion (checked against the rules written out here),
 *    ids = the special ids + the tokenizer's ids of the text between them;
 *  - the pixels: the GPU preprocessing (encodeImageRgba) gives the features of the Pillow-exact CPU pixels, bit for bit;
 *  - logits of the last rows: relL2 ≤ 1e-5 in f32 (int4: ≤ 1e-4 against the reference on the dequantized weights,
 *    covering the tied head quantized from the f32 embeddings and the f16 token table);
 *  - greedy tokens identical to the reference's (KV cache, flash-decoding attention, argmax on the GPU).
 * The same checkpoint with a `granite` text config (Granite-3's multipliers) runs the multipliers through the whole
 * family path, where logits_scaling must not be applied (Idefics3ForConditionalGeneration's own lm_head).
 */
import { loadedView } from '../reference/int4-view.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dawnContext } from '../harness/dawn.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { readF32 } from '../../src/gpu/io.ts';
import { loadModel, type LoadedModel } from '../../src/engine/load.ts';
import type { Idefics3Config } from '../../src/models/idefics3/config.ts';
import type { Idefics3Processor } from '../../src/models/idefics3/processor.ts';
import { writeGraniteDocling } from '../../models/make-granite-docling.ts';
import { DirSource } from '../helpers/dir-source.ts';
import { readSafetensors } from '../reference/read-safetensors.ts';
import { Idefics3Reference, argmax, type WeightMap } from '../reference/idefics3-ref.ts';
import { compare } from '../harness/check.ts';

const QUESTION = 'Convert this page to docling.';
const ROWS = 4; // logit rows compared
const NEW_TOKENS = 6;

/** A page-like RGBA image: text-line stripes and a block, so the tiles differ. */
function pageImage(width: number, height: number) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const ink = (y % 12 < 3 && x % 40 < 30) || (x > 100 && y > 60);
      data[i] = ink ? 20 : 240 - (x % 7);
      data[i + 1] = ink ? 30 : 235 - (y % 5);
      data[i + 2] = ink ? 40 + ((x * y) & 63) : 230;
      data[i + 3] = 255;
    }
  return { width, height, channels: 4 as const, data };
}

/** The Idefics3 prompt of one image of rows×cols tiles (+ global) and the question, in the Granite template. */
function expectedPrompt(rows: number, cols: number, seq: number): string {
  const img = '<image>'.repeat(seq), fake = '<fake_token_around_image>';
  let grid = '';
  for (let r = 1; r <= rows; r++) {
    for (let c = 1; c <= cols; c++) grid += `${fake}<row_${r}_col_${c}>${img}`;
    grid += '\n';
  }
  const image = `${grid}\n${fake}<global-img>${img}${fake}`;
  return `<|start_of_role|>user<|end_of_role|>${image}${QUESTION}<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>`;
}

describe('Granite-Docling layout end to end vs the f64 reference (Node, Dawn)', () => {
  const dirs: Record<'llama' | 'granite', string> = { llama: '', granite: '' };
  let gpu: GpuContext | null = null;
  let why = '';
  let weights: WeightMap;
  const lastLogits: Partial<Record<'llama' | 'granite', Float32Array>> = {};

  before(async () => {
    for (const text of ['llama', 'granite'] as const) {
      dirs[text] = mkdtempSync(join(tmpdir(), `webvlm-granite-docling-${text}-`));
      // Same seed and the same tensor names/shapes: the two checkpoints hold identical weights.
      await writeGraniteDocling({ size: 'test', text, out: dirs[text], seed: 11 });
    }
    weights = readSafetensors(join(dirs.llama, 'model.safetensors'));
    ({ gpu, why } = await dawnContext());
  });
  after(() => {
    gpu?.destroy();
    for (const d of Object.values(dirs)) if (d) rmSync(d, { recursive: true, force: true });
  });

  for (const [text, format] of [['llama', 'f32'], ['llama', 'int4'], ['granite', 'f32']] as const) {
    test(`${text} text config, ${format}: prompt ids, GPU pixels, logits, greedy tokens`, { timeout: 600_000 }, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const m: LoadedModel = await loadModel(gpu, `test/granite-docling-${text}`, { source: new DirSource(dirs[text]), weights: format });
      const cfg = m.config as Idefics3Config;
      assert.equal(cfg.text.textModelType, text);
      // DocTags are special tokens: the family keeps them in the streamed answer (the model card decodes with
      // skip_special_tokens=False); a plain SmolVLM does not.
      assert.equal(m.family.keepsSpecialTokens?.(m.tokenizer, m.config), true);
      const dec = m.tokenizer.createStreamDecoder({ skipSpecialTokens: false });
      assert.equal(['<doctag>', '<otsl>'].map((tk) => dec.push(m.tokenizer.tokenToId(tk)!)).join(''), '<doctag><otsl>');
      const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: QUESTION }] }];
      const img = pageImage(150, 100);
      const proc = m.processor.processChat(messages, [img]);
      const plan = proc.images[0];
      const seq = (m.processor as Idefics3Processor).config.imageSeqLen;

      // Prompt: 150×100 → longest edge 512 (2 tiles of 256) → 512×342 → a 2×2 grid + the global frame.
      assert.deepEqual([plan.rows, plan.cols, plan.frames, seq], [2, 2, 5, 16]);
      assert.equal(proc.prompt, expectedPrompt(2, 2, seq));
      const special = /(<\|start_of_role\|>|<\|end_of_role\|>|<\|end_of_text\|>|<image>|<fake_token_around_image>|<global-img>|<row_\d_col_\d>)/;
      const want: number[] = [];
      for (const piece of proc.prompt.split(special)) {
        if (!piece) continue;
        if (special.test(piece)) want.push(m.tokenizer.requireId(piece));
        else want.push(...m.tokenizer.encode(piece));
      }
      assert.deepEqual(proc.inputIds, want, 'ids = special ids + the text pieces\' ids');
      assert.equal(proc.inputIds.filter((x) => x === 100270).length, 5 * seq);
      const grid = new Set(Array.from({ length: 16 }, (_, i) => m.tokenizer.requireId(`<row_${(i >> 2) + 1}_col_${(i & 3) + 1}>`)));
      assert.deepEqual(proc.inputIds.filter((x) => grid.has(x)), [100258, 100259, 100263, 100267], 'row/col tokens');

      // Pixels: the GPU preprocessing path == the Pillow-exact CPU pixels, as features, bit for bit.
      const features = await m.model.encodeImage(proc.pixelValues, plan.frames);
      const gpuPre = await m.model.encodeImageRgba(img, plan, m.processor.pixels);
      const fa = await readF32(gpu, features, features.size / 4), fb = await readF32(gpu, gpuPre, gpuPre.size / 4);
      let diff = 0;
      for (let i = 0; i < fa.length; i++) diff = Math.max(diff, Math.abs(fa[i] - fb[i]));
      assert.equal(diff, 0, 'GPU-preprocessed features == CPU-pixel features');
      gpu.allocator.destroy(gpuPre);

      // Logits of the last rows vs the reference (int4: on the weights as the int4 path holds them).
      const cache = m.model.newCache(512);
      const got = await m.model.forward(proc.inputIds, cache, [features], ROWS);
      const refCfg = format === 'int4' ? { ...cfg, tieWordEmbeddings: false } : cfg;
      const ref = new Idefics3Reference(refCfg, format === 'int4' ? loadedView(m.family.tensorPlan(m.config), weights).map : weights);
      const pixels = { shape: proc.pixelShape, data: proc.pixelValues };
      const feats = ref.imageFeatures(pixels);
      const { logits } = ref.textForward(proc.inputIds, feats, { logits: ROWS });
      const s = compare(got, logits.data);
      t.diagnostic(`${text} ${format}: ${proc.inputIds.length} ids, ${plan.frames} frames; logits (last ${ROWS}) relL2 ${s.relL2.toExponential(2)}, maxAbs ${s.maxAbs.toExponential(2)}`);
      assert.ok(s.relL2 <= (format === 'f32' ? 1e-5 : 1e-4), `relL2 ${s.relL2}`);
      const V = cfg.text.vocabSize;
      for (let r = 0; r < ROWS; r++) assert.equal(argmax(got.subarray(r * V, (r + 1) * V)), argmax(logits.data.subarray(r * V, (r + 1) * V)), `argmax row ${r}`);
      if (format === 'f32') lastLogits[text] = got.slice((ROWS - 1) * V);

      // Greedy decoding on the GPU == the reference's.
      const tokens = [argmax(got.subarray((ROWS - 1) * V))];
      while (tokens.length < NEW_TOKENS) tokens.push(await m.model.forwardArgmax([tokens[tokens.length - 1]], cache));
      const refTokens = ref.greedyWithFeatures(proc.inputIds, feats, NEW_TOKENS);
      t.diagnostic(`${text} ${format}: greedy ${JSON.stringify(tokens)} (reference ${JSON.stringify(refTokens)})`);
      assert.deepEqual(tokens, refTokens);

      // A random tied-embedding model's greedy run repeats its last token (its own row dominates the head), so also
      // decode varied tokens one at a time (DocTags-like ids) and compare every step's logits.
      const forced = [100327, 100260, ...m.tokenizer.encode('<loc_12><loc_40>Title'), 100317];
      const c2 = m.model.newCache(512);
      await m.model.forward(proc.inputIds, c2, [features], 1);
      let { pastKV } = ref.textForward(proc.inputIds, feats, { logits: 'last' });
      let worst = 0;
      for (const id of forced) {
        const step = await m.model.forward([id], c2, [], 1);
        const r = ref.textForward([id], null, { pastKV, logits: 'last' });
        pastKV = r.pastKV;
        const st = compare(step, r.logits.data);
        worst = Math.max(worst, st.relL2);
        assert.equal(argmax(step), argmax(r.logits.data), `decode step ${id}`);
      }
      t.diagnostic(`${text} ${format}: ${forced.length} forced decode steps, worst logits relL2 ${worst.toExponential(2)}`);
      assert.ok(worst <= (format === 'f32' ? 1e-5 : 1e-4), `decode relL2 ${worst}`);
      c2.destroy(gpu);

      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      m.model.destroy();
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }

  const REAL = process.env.WEBVLM_GRANITE_DOCLING_258M === '1';
  test('real Granite-Docling-258M shapes (int4, one frame): logits and greedy tokens match the reference', { timeout: 1_800_000, skip: REAL ? false : 'set WEBVLM_GRANITE_DOCLING_258M=1 (minutes on a CPU adapter)' }, async (t) => {
    if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
    const dir = mkdtempSync(join(tmpdir(), 'webvlm-granite-docling-258m-'));
    try {
      await writeGraniteDocling({ size: '258m', out: dir, seed: 5 });
      // int4 (the default): in f32 the 100,352 × 576 token table is one 231 MB buffer, past a 128 MiB binding limit
      // (lavapipe's, and WebGPU's default maxStorageBufferBindingSize); in int4 it is a 116 MB f16 table.
      const m = await loadModel(gpu, 'test/granite-docling-258m', { source: new DirSource(dir), weights: 'int4' });
      const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: QUESTION }] }];
      const img = pageImage(150, 100);
      const proc = m.processor.processChat(messages, [img], { detail: 'low' });
      const features = await m.model.encodeImage(proc.pixelValues, proc.pixelShape[0]);
      const cache = m.model.newCache(256);
      const got = await m.model.forward(proc.inputIds, cache, [features], ROWS);
      const ref = new Idefics3Reference({ ...(m.config as Idefics3Config), tieWordEmbeddings: false }, loadedView(m.family.tensorPlan(m.config), readSafetensors(join(dir, 'model.safetensors'))).map);
      const feats = ref.imageFeatures({ shape: proc.pixelShape, data: proc.pixelValues });
      const { logits } = ref.textForward(proc.inputIds, feats, { logits: ROWS });
      const s = compare(got, logits.data);
      t.diagnostic(`258M: ${proc.inputIds.length} ids, 1 frame; logits (last ${ROWS}) relL2 ${s.relL2.toExponential(2)}, maxAbs ${s.maxAbs.toExponential(2)}`);
      // 12 + 30 layers, K up to 12,288 (the connector): f32 rounding grows to ~1e-5..1e-4 (idefics3-ref.ts, Numerics).
      assert.ok(s.relL2 <= 1e-4, `relL2 ${s.relL2}`);
      const V = (m.config as Idefics3Config).text.vocabSize;
      const tokens = [argmax(got.subarray((ROWS - 1) * V))];
      while (tokens.length < 4) tokens.push(await m.model.forwardArgmax([tokens[tokens.length - 1]], cache));
      assert.deepEqual(tokens, ref.greedyWithFeatures(proc.inputIds, feats, 4));
      gpu.allocator.destroy(features);
      cache.destroy(gpu);
      m.model.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the Granite multipliers act (same weights, other logits); logits_scaling is not applied', (t) => {
    if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
    const { llama, granite } = lastLogits;
    assert.ok(llama && granite, 'both f32 runs ran');
    const s = compare(granite, llama);
    t.diagnostic(`granite vs llama text config, same weights: last-row logits relL2 ${s.relL2.toExponential(2)}`);
    assert.ok(s.relL2 > 1e-2, 'the multipliers change the logits');
    // logits_scaling (8): the granite run matched (relL2 ≤ 1e-5) a reference that never divides, which a divided
    // result (1/8 of it, relL2 0.875) could not.
  });
});
