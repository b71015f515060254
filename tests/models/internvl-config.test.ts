/**
 * InternVL config parsing (both layouts), tensor plans at the real shapes and the header check
 * (src/models/internvl/config.ts, plan.ts), on the generator's configs (models/make-internvl.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInternVLConfig } from '../../src/models/internvl/config.ts';
import { checkInternVLHeaders, internvlPlan } from '../../src/models/internvl/plan.ts';
import { familyFor } from '../../src/models/registry.ts';
import { internvlConfigJson } from '../../models/make-internvl.ts';
import { WebVLMError } from '../../src/errors.ts';

type Json = Record<string, any>;
const clone = (x: Json): Json => JSON.parse(JSON.stringify(x));
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function refuses(json: Json, what: RegExp) {
  assert.throws(() => parseInternVLConfig(json), (e: unknown) => e instanceof WebVLMError && e.code === 'UnsupportedModel' && what.test(e.message), String(what));
}

test('InternVL3-1B, original layout: parsed shapes and options', () => {
  const c = parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original'));
  assert.equal(c.layout, 'original');
  assert.equal(c.imageTokenId, 151667);
  assert.equal(c.imageSeqLen, 256);
  assert.equal(c.connectorInputSize, 4096);
  assert.deepEqual(c.tiling, { minTiles: 1, maxTiles: 12, useThumbnail: true, dynamic: true });
  assert.deepEqual([c.vision.hiddenSize, c.vision.numHiddenLayers, c.vision.numPatches, c.vision.qkvBias, c.vision.postNorm], [1024, 24, 1024, true, false]);
  assert.deepEqual([c.text.hiddenSize, c.text.numHiddenLayers, c.text.numAttentionHeads, c.text.numKeyValueHeads, c.text.headDim], [896, 24, 14, 2, 64]);
  assert.equal(c.text.ropeTheta, 1e6);
  assert.deepEqual(c.text.ropeScaling, { type: 'dynamic', factor: 2, maxPositions: 32768 });
  assert.equal(c.text.tieWordEmbeddings, false);
});

test('InternVL3-1B-hf, native layout: parsed shapes; use_mean_pooling false adds the final LayerNorm', () => {
  const j = internvlConfigJson('internvl3-1b', 'native');
  const c = parseInternVLConfig(j);
  assert.equal(c.layout, 'native');
  assert.equal(c.tiling, undefined);
  assert.deepEqual([c.vision.imageSize, c.vision.patchSize, c.vision.postNorm, c.imageSeqLen], [448, 14, false, 256]);
  const k = clone(j);
  k.vision_config.use_mean_pooling = false;
  assert.equal(parseInternVLConfig(k).vision.postNorm, true);
  assert.ok(internvlPlan(parseInternVLConfig(k)).tensors.some((t) => t.name === 'vision_tower.layernorm.weight'));
});

test('refused: what is not implemented', () => {
  const o = internvlConfigJson('internvl3-1b', 'original'), n = internvlConfigJson('internvl3-1b', 'native');
  const edit = (j: Json, f: (x: Json) => void) => {
    const x = clone(j);
    f(x);
    return x;
  };
  refuses(edit(o, (x) => (x.ps_version = 'v1')), /ps_version/);
  refuses(edit(o, (x) => delete x.ps_version), /ps_version/);
  refuses(edit(o, (x) => (x.select_layer = -4)), /select_layer/);
  refuses(edit(o, (x) => (x.template = 'internlm2-chat')), /template/);
  refuses(edit(o, (x) => (x.force_image_size = 224)), /force_image_size/);
  refuses(edit(o, (x) => (x.llm_config.model_type = 'internlm2')), /model_type/);
  refuses(edit(o, (x) => (x.llm_config.architectures = ['LlamaForCausalLM'])), /architectures/);
  refuses(edit(o, (x) => (x.vision_config.qk_normalization = true)), /QK normalization/);
  refuses(edit(o, (x) => delete x.vision_config.qk_normalization), /QK normalization/);
  refuses(edit(o, (x) => (x.vision_config.norm_type = 'rms_norm')), /norm_type/);
  refuses(edit(o, (x) => (x.llm_config.rope_scaling = { type: 'yarn', factor: 4 })), /rope|yarn/);
  refuses(edit(o, (x) => (x.downsample_ratio = 0.3)), /downsample_ratio/);
  refuses(edit(n, (x) => (x.vision_config.use_qk_norm = true)), /QK normalization/);
  refuses(edit(n, (x) => (x.vision_feature_layer = -2)), /vision_feature_layer/);
  refuses(edit(n, (x) => (x.image_seq_length = 64)), /image_seq_length/);
  refuses(edit(n, (x) => (x.text_config.model_type = 'llama')), /model_type/);
  refuses(edit(n, (x) => (x.vision_config.image_size = [448, 224])), /square/);
  refuses(edit(n, (x) => (x.image_token_id = 200000)), /vocabulary/);
  refuses({ model_type: 'internvl_chat', llm_config: {} }, /vision_config/);
});

test('tensor plans at the real shapes: names, counts and parameters of both layouts', (t) => {
  for (const [size, layout, tensors, params] of [
    ['internvl3-1b', 'original', 637, 938_193_024],
    ['internvl3-1b', 'native', 733, 938_193_024],
    ['internvl2.5-1b', 'original', 637, 938_193_024],
  ] as const) {
    const cfg = parseInternVLConfig(internvlConfigJson(size, layout));
    const plan = internvlPlan(cfg);
    const n = plan.tensors.reduce((s, x) => s + numel(x.shape), 0);
    t.diagnostic(`${size} ${layout}: ${plan.tensors.length} tensors, ${n} parameters`);
    assert.equal(plan.tensors.length, tensors);
    assert.equal(n, params);
  }
  const o = internvlPlan(parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original')));
  const names = new Set(o.tensors.map((x) => x.name));
  for (const name of ['vision_model.embeddings.class_embedding', 'vision_model.embeddings.position_embedding', 'vision_model.encoder.layers.23.attn.qkv.bias', 'vision_model.encoder.layers.0.ls2', 'mlp1.3.weight', 'language_model.model.layers.0.self_attn.k_proj.bias', 'language_model.lm_head.weight']) {
    assert.ok(names.has(name), name);
  }
  assert.deepEqual(o.tensors.find((x) => x.name === 'vision_model.embeddings.position_embedding')!.shape, [1, 1025, 1024]);
  assert.ok(!names.has('language_model.model.layers.0.self_attn.o_proj.bias'), 'Qwen2 o_proj has no bias');
  const nat = new Set(internvlPlan(parseInternVLConfig(internvlConfigJson('internvl3-1b', 'native'))).tensors.map((x) => x.name));
  for (const name of ['vision_tower.embeddings.cls_token', 'vision_tower.embeddings.patch_embeddings.projection.weight', 'vision_tower.encoder.layer.3.attention.v_proj.bias', 'vision_tower.encoder.layer.3.lambda_1', 'multi_modal_projector.linear_2.bias', 'language_model.lm_head.weight']) {
    assert.ok(nat.has(name), name);
  }
});

test('tied head: no lm_head tensor needed, a saved one tolerated', () => {
  const cfg = parseInternVLConfig(internvlConfigJson('test', 'original', { tie: true }));
  const plan = internvlPlan(cfg);
  assert.ok(!plan.tensors.some((x) => x.name === 'language_model.lm_head.weight'));
  assert.deepEqual(plan.tolerated, ['language_model.lm_head.weight']);
});

test('header check: the generator layout passes; a missing or misshapen tensor is CorruptCheckpoint', () => {
  const cfg = parseInternVLConfig(internvlConfigJson('test', 'native'));
  const tensors = internvlPlan(cfg).tensors.map(({ name, shape }) => ({ name, shape }));
  checkInternVLHeaders(cfg, [{ file: 'model.safetensors', header: { tensors } }]);
  const code = (f: () => void) => assert.throws(f, (e: unknown) => e instanceof WebVLMError && e.code === 'CorruptCheckpoint');
  code(() => checkInternVLHeaders(cfg, [{ file: 'model.safetensors', header: { tensors: tensors.slice(1) } }]));
  code(() => checkInternVLHeaders(cfg, [{ file: 'model.safetensors', header: { tensors: tensors.map((x, i) => (i === 5 ? { ...x, shape: [x.shape[0] + 1, ...x.shape.slice(1)] } : x)) } }]));
});

test('registry: both model_types resolve to the InternVL family', () => {
  assert.equal(familyFor({ model_type: 'internvl_chat' }).name, 'internvl');
  assert.equal(familyFor({ model_type: 'internvl' }).name, 'internvl');
});

test('memory estimate of InternVL3-1B (int4 / f32, 4096 context, one image of 12 tiles + thumbnail)', async (t) => {
  const { estimateMemory } = await import('../../src/engine/memory.ts');
  const { internvlFamily } = await import('../../src/models/internvl/index.ts');
  const cfg = parseInternVLConfig(internvlConfigJson('internvl3-1b', 'original'));
  const frames = internvlFamily.framesPerImage(cfg, null);
  assert.ok(frames >= 1 && frames <= 13, `${frames} frames per vision chunk`);
  for (const weights of ['int4', 'f32'] as const) {
    const e = estimateMemory({ config: cfg as never, weights, contextLength: 4096, framesPerImage: frames });
    t.diagnostic(`${weights}: weights ${(e.weights / 2 ** 20).toFixed(0)} MiB, KV ${(e.kvCache / 2 ** 20).toFixed(0)} MiB, activations ${(e.activations / 2 ** 20).toFixed(0)} MiB, largest ${e.largestBuffer.what}`);
    // f32: 4 bytes per parameter (938,193,024); int4: under a third of that.
    if (weights === 'f32') assert.equal(e.weights, 938_193_024 * 4);
    else assert.ok(e.weights < (938_193_024 * 4) / 3, String(e.weights));
  }
});
