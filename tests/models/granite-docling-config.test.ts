/**
 * Granite-Docling-258M's genuine files (models/granite-docling/, see its README.md) through webvlm's parsers, and the
 * decoder-config pieces Granite and the next families need (Granite text configs, RoPE scaling parse), without a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import { idefics3Plan } from '../../src/models/idefics3/plan.ts';
import { Idefics3Processor } from '../../src/models/idefics3/processor.ts';
import { familyFor } from '../../src/models/registry.ts';
import { parseRope } from '../../src/models/rope-scaling.ts';
import { Tokenizer } from '../../src/input/tokenizer.ts';
import { planSafetensors } from '../../models/make-checkpoint.ts';
import { GRANITE_DOCLING_DIR, GRANITE_MULTIPLIERS, graniteTokenizerJson } from '../../models/make-granite-docling.ts';
import { erf, erfc, gelu } from '../reference/primitives-ref.ts';

const file = (f: string) => readFileSync(join(GRANITE_DOCLING_DIR, f), 'utf8');
const json = (f: string) => JSON.parse(file(f));
const config = json('config.json');

test('the genuine Granite-Docling-258M config.json parses: Idefics3 layout, SigLIP2-base tower, a Llama-typed decoder', () => {
  assert.equal(familyFor(config).name, 'idefics3');
  const c = parseIdefics3Config(config);
  assert.equal(c.imageTokenId, 100270);
  assert.equal(c.scaleFactor, 4);
  assert.equal(c.tieWordEmbeddings, true);
  assert.deepEqual([c.vision.hiddenSize, c.vision.intermediateSize, c.vision.numHiddenLayers, c.vision.numAttentionHeads, c.vision.imageSize, c.vision.patchSize], [768, 3072, 12, 12, 512, 16]);
  assert.equal(c.imageSeqLen, 64);
  const t = c.text;
  // "Granite 165M" is saved as model_type "llama": no multipliers (LlamaModel semantics, hd^-0.5).
  assert.equal(t.textModelType, 'llama');
  assert.deepEqual([t.vocabSize, t.hiddenSize, t.intermediateSize, t.numHiddenLayers, t.numAttentionHeads, t.numKeyValueHeads, t.headDim], [100352, 576, 1536, 30, 9, 3, 64]);
  assert.equal(t.ropeTheta, 100000);
  assert.equal(t.rmsNormEps, 1e-5);
  assert.equal(t.maxPositionEmbeddings, 8192);
  assert.deepEqual(t.eosTokenIds, [100257]);
  assert.equal(t.attentionScale, undefined);
  assert.equal(t.embeddingMultiplier, undefined);
});

test('its tensor plan is the hub checkpoint: 470 tensors (tied, no lm_head), 515,093,104 bytes of BF16 = the LFS pointer size', () => {
  const plan = idefics3Plan(parseIdefics3Config(config));
  assert.equal(plan.tensors.length, 470);
  assert.ok(!plan.tensors.some((t) => t.name === 'lm_head.weight'));
  assert.deepEqual(plan.tolerated, ['lm_head.weight']);
  const f = planSafetensors('model.safetensors', plan.tensors);
  const pointer = file('model.safetensors.lfs-pointer.txt');
  const size = Number(/^size (\d+)$/m.exec(pointer)![1]);
  assert.equal(f.bytes, size);
  assert.equal(f.bytes, 515_093_104);
});

test('tokenizer (derived tokenizer.json), processor and their checks against the config', async () => {
  const tok = Tokenizer.fromFiles({ tokenizerJson: await graniteTokenizerJson(), tokenizerConfig: file('tokenizer_config.json'), chatTemplate: file('chat_template.jinja') });
  assert.deepEqual(tok.specialIds, { image: 100270, fakeTokenAroundImage: 100339, globalImg: 100340, endOfUtterance: 100352, eos: 100257, bos: 100264, pad: 100257 });
  const family = familyFor(config);
  const cfg = family.parseConfig(config);
  const proc = family.createProcessor(tok, { config, preprocessorConfig: json('preprocessor_config.json'), processorConfig: json('processor_config.json') }, cfg) as Idefics3Processor;
  assert.deepEqual([proc.config.tileSize, proc.config.longestEdge, proc.config.imageSeqLen, proc.config.doImageSplitting], [512, 2048, 64, true]);
  family.checkConsistency(cfg, tok, proc);
  // The grid tokens the processor emits exist up to 4×4 (longest edge 2048 / 512).
  for (let r = 1; r <= 4; r++) for (let c = 1; c <= 4; c++) assert.ok(tok.tokenToId(`<row_${r}_col_${c}>`) !== undefined, `<row_${r}_col_${c}>`);
  // Stop tokens: eos <|end_of_text|> from config.json, generation_config.json and the tokenizer; the family's
  // <end_of_utterance> is id 100352, past the 100,352 embedding rows: never generated, harmless.
  assert.equal(json('generation_config.json').eos_token_id, 100257);
  assert.equal(tok.tokenToId('<|end_of_text|>'), 100257);
  assert.deepEqual(family.stopTokens(cfg), ['<end_of_utterance>']);
  assert.ok(tok.tokenToId('<end_of_utterance>')! >= cfg.text.vocabSize);
  // The chat template: Granite roles, image part → <image>.
  const prompt = tok.applyChatTemplate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Convert this page to docling.' }] }], { addGenerationPrompt: true });
  assert.equal(prompt, '<|start_of_role|>user<|end_of_role|><image>Convert this page to docling.<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>');
  // DocTags element tags are special added tokens (the engine's stream decodes with skipSpecialTokens: see README).
  assert.equal(tok.decode([100327, 100260], { skipSpecialTokens: false }), '<doctag><text>');
});

test('Granite text_config: multipliers parsed with GraniteConfig defaults; logits_scaling kept, never applied by Idefics3', () => {
  const g = structuredClone(config);
  Object.assign(g.text_config, { model_type: 'granite', ...GRANITE_MULTIPLIERS });
  const t = parseIdefics3Config(g).text;
  assert.equal(t.textModelType, 'granite');
  assert.deepEqual([t.embeddingMultiplier, t.attentionScale, t.residualMultiplier, t.logitsScaling], [12, 0.015625, 0.22, 8]);
  assert.equal(t.logitsDivisor, undefined, 'Idefics3ForConditionalGeneration applies its own lm_head without logits_scaling');
  const d = structuredClone(config);
  d.text_config.model_type = 'granite';
  const td = parseIdefics3Config(d).text;
  assert.deepEqual([td.embeddingMultiplier, td.attentionScale, td.residualMultiplier, td.logitsScaling], [1, 1, 1, 1], 'GraniteConfig defaults (attention_multiplier 1.0, not hd^-0.5)');
  const bad = (patch: (c: any) => void, what: string) => {
    const c = structuredClone(config);
    patch(c);
    assert.throws(() => parseIdefics3Config(c), (e: any) => e.code === 'UnsupportedModel', what);
  };
  bad((c) => { c.text_config.residual_multiplier = 0.22; }, 'a Granite key on a llama config');
  bad((c) => { Object.assign(c.text_config, { model_type: 'granite', embedding_multiplier: -1 }); }, 'negative multiplier');
  bad((c) => { Object.assign(c.text_config, { model_type: 'granite', logits_scaling: '8' }); }, 'string multiplier');
  bad((c) => { c.text_config.model_type = 'qwen2'; }, 'other decoders');
  bad((c) => { c.text_config.rope_scaling = { rope_type: 'dynamic', factor: 2 }; }, 'RoPE scaling stays refused for Idefics3');
});

test('parseRope: transformers ≤ 4.5x and v5 forms, linear/dynamic parsed, others refused', () => {
  assert.deepEqual(parseRope({ rope_theta: 5e5, rope_scaling: null }, 'tc', 4096), { theta: 5e5, scaling: { type: 'default' } });
  assert.deepEqual(parseRope({}, 'tc', 4096), { theta: 10000, scaling: { type: 'default' } });
  assert.deepEqual(parseRope({ rope_theta: 1e6, rope_scaling: { type: 'linear', factor: 2 } }, 'tc', 4096), { theta: 1e6, scaling: { type: 'linear', factor: 2 } });
  // InternVL3-1B's Qwen2 config writes both keys.
  assert.deepEqual(parseRope({ rope_theta: 1e6, rope_scaling: { factor: 2.0, rope_type: 'dynamic', type: 'dynamic' } }, 'tc', 32768),
    { theta: 1e6, scaling: { type: 'dynamic', factor: 2, maxPositions: 32768 } });
  assert.deepEqual(parseRope({ rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 1e4 } }, 'tc', 2048), { theta: 1e4, scaling: { type: 'linear', factor: 4 } });
  for (const [what, tc] of [
    ['yarn', { rope_scaling: { rope_type: 'yarn', factor: 4 } }],
    ['llama3', { rope_parameters: { rope_type: 'llama3', factor: 8, rope_theta: 5e5 } }],
    ['unknown key', { rope_scaling: { rope_type: 'linear', factor: 2, low_freq_factor: 1 } }],
    ['factor < 1', { rope_scaling: { rope_type: 'dynamic', factor: 0.5 } }],
    ['no factor', { rope_scaling: { rope_type: 'linear' } }],
    ['partial rotary', { rope_parameters: { rope_type: 'default', partial_rotary_factor: 0.5 } }],
    ['not an object', { rope_scaling: 'linear' }],
    ['bad theta', { rope_theta: -1 }],
  ] as const) {
    assert.throws(() => parseRope(tc as Record<string, unknown>, 'tc', 2048), (e: any) => e.code === 'UnsupportedModel' && /rope|theta/i.test(e.message), what);
  }
});

test('reference erf/erfc/gelu (float64) against tabulated values', () => {
  // erf: Abramowitz & Stegun table 7.1 / high-precision values; erfc tails.
  for (const [x, v] of [[0, 0], [0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [1.5, 0.9661051464753108], [2, 0.9953222650189527], [3, 0.9999779095030014], [-1, -0.8427007929497149]] as const) {
    assert.ok(Math.abs(erf(x) - v) < 2e-16, `erf(${x}) = ${erf(x)}, want ${v}`);
  }
  for (const [x, v] of [[2, 4.677734981047266e-3], [3, 2.209049699858544e-5], [5, 1.5374597944280349e-12], [10, 2.088487583762545e-45]] as const) {
    assert.ok(Math.abs(erfc(x) - v) / v < 1e-14, `erfc(${x}) = ${erfc(x)}, want ${v}`);
  }
  assert.ok(Math.abs(gelu(1) - 0.8413447460685429) < 1e-15);
  assert.ok(Math.abs(gelu(-3) - -3 * 0.5 * erfc(3 / Math.SQRT2)) < 1e-18);
});
