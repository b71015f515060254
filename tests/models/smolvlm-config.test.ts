/**
 * The SmolVLM family without a GPU: SmolVLM2's config.json files (models/smolvlm2/, built from the published shapes)
 * parse with transformers' defaults, the registry picks the family by model_type, the tensor plan is Idefics3's (the
 * same names and shapes as SmolVLM-256M-Instruct's real checkpoint for the same sizes), the load-time checks between
 * the files hold for the three checkpoints and fail for inconsistent ones, and what the family does not know is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSmolVLMConfig } from '../../src/models/smolvlm/config.ts';
import { smolvlmFamily } from '../../src/models/smolvlm/index.ts';
import { SmolVLMProcessor } from '../../src/models/smolvlm/processor.ts';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import { idefics3Plan } from '../../src/models/idefics3/plan.ts';
import { familyFor, supportedModelTypes } from '../../src/models/registry.ts';
import { estimateMemory } from '../../src/engine/memory.ts';
import { Tokenizer } from '../../src/input/tokenizer.ts';
import { isWebVLMError } from '../../src/errors.ts';
import { smolvlm2Files, SMOLVLM2_REPOS } from '../../models/make-smolvlm2.ts';

const SHARED = new URL('../../../shared/models/SmolVLM-256M-Instruct/', import.meta.url);
const v1Config = JSON.parse(readFileSync(new URL('config.json', SHARED), 'utf8'));
const code = (want: string, msg?: RegExp) => (e: unknown) => isWebVLMError(e) && e.code === want && (!msg || msg.test(e.message));

test('the three SmolVLM2 configs parse, with transformers\' defaults for the keys they omit', async () => {
  const c256 = parseSmolVLMConfig((await smolvlm2Files('256m')).config);
  assert.equal(c256.modelType, 'smolvlm');
  // vision_config omits intermediate_size / num_hidden_layers: SmolVLMVisionConfig's 3072 and 12.
  assert.deepEqual([c256.vision.hiddenSize, c256.vision.intermediateSize, c256.vision.numHiddenLayers, c256.vision.headDim, c256.vision.patchesPerSide], [768, 3072, 12, 64, 32]);
  assert.deepEqual([c256.text.hiddenSize, c256.text.numHiddenLayers, c256.text.numAttentionHeads, c256.text.numKeyValueHeads, c256.text.headDim], [576, 30, 9, 3, 64]);
  assert.deepEqual([c256.imageTokenId, c256.scaleFactor, c256.imageSeqLen, c256.tieWordEmbeddings, c256.text.vocabSize], [49190, 4, 64, false, 49280]);
  assert.deepEqual(c256.text.eosTokenIds, [2], 'text_config has no eos_token_id: LlamaConfig\'s 2');
  const c500 = parseSmolVLMConfig((await smolvlm2Files('500m')).config);
  assert.deepEqual([c500.text.hiddenSize, c500.text.intermediateSize, c500.text.numHiddenLayers, c500.text.numAttentionHeads, c500.text.numKeyValueHeads], [960, 2560, 32, 15, 5]);
  // 2.2B: SigLIP-so400m (hidden 1152 and 16 heads are the defaults: head_dim 72), 384 px / patch 14 → 27 a side
  // (Conv2d "valid": 6 px unread), scale factor 3 → 81 tokens a frame; SmolLM2-1.7B text, MHA 32/32.
  const c22 = parseSmolVLMConfig((await smolvlm2Files('2.2b')).config);
  assert.deepEqual([c22.vision.hiddenSize, c22.vision.intermediateSize, c22.vision.numHiddenLayers, c22.vision.numAttentionHeads, c22.vision.headDim], [1152, 4304, 27, 16, 72]);
  assert.deepEqual([c22.vision.imageSize, c22.vision.patchSize, c22.vision.patchesPerSide, c22.vision.numPatches], [384, 14, 27, 729]);
  assert.deepEqual([c22.scaleFactor, c22.imageSeqLen, c22.connectorInputSize], [3, 81, 1152 * 9]);
  assert.deepEqual([c22.text.hiddenSize, c22.text.intermediateSize, c22.text.numHiddenLayers, c22.text.numAttentionHeads, c22.text.numKeyValueHeads, c22.text.ropeTheta], [2048, 8192, 24, 32, 32, 273768]);
});

test('registry: model_type "smolvlm" is the SmolVLM family; a near miss names it', () => {
  assert.equal(familyFor({ model_type: 'smolvlm' }), smolvlmFamily);
  assert.equal(familyFor({ model_type: 'idefics3' }).name, 'idefics3');
  assert.ok(supportedModelTypes().includes('smolvlm'));
  assert.throws(() => familyFor({ model_type: 'smolvlm2' }), (e: unknown) => isWebVLMError(e) && e.code === 'UnsupportedModel'
    && (e.details as { nearest?: string }).nearest === 'smolvlm' && /SmolVLM2-256M-Video-Instruct/.test(e.hint ?? ''));
});

test('tensor plan: Idefics3\'s; SmolVLM2-256M has SmolVLM-256M-Instruct\'s 471 tensors, names and shapes', async () => {
  const c256 = parseSmolVLMConfig((await smolvlm2Files('256m')).config);
  const ours = smolvlmFamily.tensorPlan(c256).tensors.map(({ name, shape }) => [name, shape.join('x')]);
  const v1 = idefics3Plan(parseIdefics3Config(v1Config)).tensors.map(({ name, shape }) => [name, shape.join('x')]);
  assert.equal(ours.length, 471);
  assert.deepEqual(ours, v1);
  const counts: Record<string, number> = {};
  for (const v of ['500m', '2.2b'] as const) {
    const c = parseSmolVLMConfig((await smolvlm2Files(v)).config);
    counts[v] = smolvlmFamily.tensorPlan(c).tensors.length;
    assert.equal(smolvlmFamily.layerCount(c), c.text.numHiddenLayers + c.vision.numHiddenLayers);
  }
  assert.deepEqual(counts, { '500m': 489, '2.2b': 657 });
  const c22 = parseSmolVLMConfig((await smolvlm2Files('2.2b')).config);
  const byName = new Map(smolvlmFamily.tensorPlan(c22).tensors.map((t) => [t.name, t.shape]));
  assert.deepEqual(byName.get('model.vision_model.embeddings.patch_embedding.weight'), [1152, 3, 14, 14]);
  assert.deepEqual(byName.get('model.vision_model.embeddings.position_embedding.weight'), [729, 1152]);
  assert.deepEqual(byName.get('model.connector.modality_projection.proj.weight'), [2048, 10368]);
  assert.deepEqual(byName.get('lm_head.weight'), [49280, 2048]);
});

test('load-time checks between the files pass for the three checkpoints and catch inconsistent ones', async () => {
  const tokFiles = async (v: '256m' | '500m' | '2.2b') => {
    const f = await smolvlm2Files(v);
    const tok = Tokenizer.fromFiles({ tokenizerJson: readFileSync(new URL('tokenizer.json', SHARED), 'utf8'), tokenizerConfig: f.tokenizerConfig, chatTemplate: readFileSync(new URL('chat_template.json', SHARED), 'utf8') });
    return { f, tok };
  };
  for (const v of ['256m', '500m', '2.2b'] as const) {
    const { f, tok } = await tokFiles(v);
    const cfg = smolvlmFamily.parseConfig(f.config);
    const proc = smolvlmFamily.createProcessor(tok, { config: f.config, preprocessorConfig: f.preprocessorConfig, processorConfig: f.processorConfig, tokenizerConfig: f.tokenizerConfig }, cfg);
    assert.ok(proc instanceof SmolVLMProcessor, SMOLVLM2_REPOS[v]);
    assert.doesNotThrow(() => smolvlmFamily.checkConsistency(cfg, tok, proc), SMOLVLM2_REPOS[v]);
    assert.deepEqual(smolvlmFamily.stopTokens(cfg), ['<end_of_utterance>']);
  }
  const { f, tok } = await tokFiles('2.2b');
  const cfg = smolvlmFamily.parseConfig(f.config);
  const make = (pre: Record<string, unknown>, proc: Record<string, unknown>) => smolvlmFamily.createProcessor(tok, { config: f.config, preprocessorConfig: pre, processorConfig: proc, tokenizerConfig: f.tokenizerConfig }, cfg);
  assert.throws(() => smolvlmFamily.checkConsistency(cfg, tok, make(f.preprocessorConfig, { ...f.processorConfig, image_seq_len: 64 })), code('CorruptCheckpoint', /image_seq_len 64/));
  assert.throws(() => smolvlmFamily.checkConsistency(cfg, tok, make({ ...f.preprocessorConfig, max_image_size: { longest_edge: 512 } }, f.processorConfig)), code('CorruptCheckpoint', /512/));
  assert.throws(() => smolvlmFamily.checkConsistency({ ...cfg, imageTokenId: 49189 }, tok, make(f.preprocessorConfig, f.processorConfig)), code('CorruptCheckpoint', /image_token_id/));
  // Memory: the 2.2B's frames are encoded two at a time (729 patches × 10,368 shuffled channels × 4 B ≈ 30 MB a frame).
  assert.equal(smolvlmFamily.framesPerImage(cfg, f.preprocessorConfig), 2);
  const est = estimateMemory({ config: cfg, weights: 'int4', contextLength: 4096, framesPerImage: 2 });
  assert.ok(est.weights > 1.0e9 && est.weights < 2.0e9, `2.2B int4 weights ${est.weights}`);
  assert.equal(est.kvCache, 2 * 24 * 32 * 4096 * 64 * 4);
});

test('refused: other model_types, another vision model_type, tie_word_embeddings that disagree', async () => {
  const base = (await smolvlm2Files('256m')).config;
  const edit = (f: (c: any) => void) => {
    const c = structuredClone(base);
    f(c);
    return c;
  };
  assert.throws(() => parseSmolVLMConfig(v1Config), code('UnsupportedModel', /expected "smolvlm"/));
  assert.throws(() => parseSmolVLMConfig(edit((c) => (c.vision_config.model_type = 'siglip_vision_model'))), code('UnsupportedModel', /smolvlm_vision/));
  assert.throws(() => parseSmolVLMConfig(edit((c) => (c.tie_word_embeddings = true))), code('UnsupportedModel', /disagree/));
  assert.throws(() => parseSmolVLMConfig(edit((c) => (c.text_config.tie_word_embeddings = true))), code('UnsupportedModel', /disagree/));
  const tied = parseSmolVLMConfig(edit((c) => { c.tie_word_embeddings = true; c.text_config.tie_word_embeddings = true; }));
  assert.equal(tied.tieWordEmbeddings, true);
  assert.equal(smolvlmFamily.tensorPlan(tied).tensors.some((t) => t.name === 'lm_head.weight'), false, 'a tied head is filled from embed_tokens');
  assert.doesNotThrow(() => parseSmolVLMConfig(edit((c) => delete c.vision_config.model_type)));
  // Idefics3's schema checks still apply (here: a grid the scale factor does not divide).
  assert.throws(() => parseSmolVLMConfig(edit((c) => (c.scale_factor = 3))), code('UnsupportedModel', /scale_factor 3/));
  assert.throws(() => parseSmolVLMConfig(edit((c) => (c.vision_config.patch_size = 600))), code('UnsupportedModel', /exceeds image_size/));
});
