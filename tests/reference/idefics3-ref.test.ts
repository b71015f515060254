/**
 * Unit checks of the f64 Idefics3 reference (tests/reference/idefics3-ref.ts), the config parser and the test
 * safetensors reader; plus agreement with the tiny trained model's torch fixture when it exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assertClose, compare, fmtStats, randomF32 } from '../harness/check.ts';
import { parseIdefics3Config } from '../../src/models/idefics3/config.ts';
import {
  Idefics3Reference, KVCache, applyRope, argmax, attention, expectedWeightShapes, kvHeadFor, pixelShuffle, ropeInvFreq, rotateHalf,
  type PixelTensor, type WeightMap,
} from './idefics3-ref.ts';
import { f16ToNumber, parseSafetensors, readSafetensors } from './read-safetensors.ts';
import { fixtureTensor } from '../helpers/tiny-fixture.ts';

// ---------------------------------------------------------------------------------------------- strided views
// A tiny torch-like strided tensor, to transcribe HF's view/permute/reshape/expand sequences literally.

function contiguousStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}
const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

class Strided {
  constructor(readonly data: Float64Array, readonly shape: number[], readonly strides: number[], readonly offset = 0) {}
  static of(data: Float64Array, shape: number[]): Strided {
    assert.equal(numel(shape), data.length);
    return new Strided(data, shape, contiguousStrides(shape));
  }
  isContiguous(): boolean {
    const c = contiguousStrides(this.shape);
    return this.shape.every((n, i) => n === 1 || this.strides[i] === c[i]);
  }
  /** torch.view: only on contiguous memory here (every HF view we transcribe is). */
  view(shape: number[]): Strided {
    if (!this.isContiguous()) throw new Error('view on a non-contiguous tensor');
    assert.equal(numel(shape), numel(this.shape), `view [${shape}] of [${this.shape}]`);
    return new Strided(this.data, shape, contiguousStrides(shape), this.offset);
  }
  permute(...dims: number[]): Strided {
    return new Strided(this.data, dims.map((d) => this.shape[d]), dims.map((d) => this.strides[d]), this.offset);
  }
  unsqueeze(dim: number): Strided {
    const shape = [...this.shape], strides = [...this.strides];
    shape.splice(dim, 0, 1);
    strides.splice(dim, 0, 0);
    return new Strided(this.data, shape, strides, this.offset);
  }
  expand(shape: number[]): Strided {
    const strides = shape.map((n, i) => {
      if (this.shape[i] === n) return this.strides[i];
      assert.equal(this.shape[i], 1, 'expand of a non-singleton dimension');
      return 0;
    });
    return new Strided(this.data, shape, strides, this.offset);
  }
  contiguous(): Strided {
    const out = new Float64Array(numel(this.shape));
    const idx = new Array<number>(this.shape.length).fill(0);
    for (let n = 0; n < out.length; n++) {
      let at = this.offset;
      for (let d = 0; d < idx.length; d++) at += idx[d] * this.strides[d];
      out[n] = this.data[at];
      for (let d = idx.length - 1; d >= 0 && ++idx[d] === this.shape[d]; d--) idx[d] = 0;
    }
    return Strided.of(out, this.shape);
  }
  /** torch.reshape = view when possible, else contiguous().view(). */
  reshape(shape: number[]): Strided {
    return (this.isContiguous() ? this : this.contiguous()).view(shape);
  }
}

/** Idefics3Connector.pixel_shuffle, line by line. */
function pixelShuffleTranscribed(x: Strided, s: number): Strided {
  const [bsz, seq, embedDim] = x.shape;
  const height = Math.trunc(Math.sqrt(seq)), width = height;
  x = x.view([bsz, height, width, embedDim]);
  x = x.view([bsz, height, Math.trunc(width / s), embedDim * s]);
  x = x.permute(0, 2, 1, 3);
  x = x.reshape([bsz, Math.trunc(width / s), Math.trunc(height / s), embedDim * s * s]);
  x = x.permute(0, 2, 1, 3);
  return x.reshape([bsz, Math.trunc(seq / (s * s)), embedDim * s * s]);
}

test('pixel_shuffle closed form == transcription of view/permute/reshape', () => {
  for (const [frames, side, dim, s] of [[2, 4, 3, 2], [1, 8, 5, 2], [2, 6, 2, 3], [1, 8, 1, 4]]) {
    const seq = side * side;
    // x[f, p, d] = 1000f + 10p + d: every value names its source.
    const x = new Float64Array(frames * seq * dim);
    for (let f = 0; f < frames; f++) for (let p = 0; p < seq; p++) for (let d = 0; d < dim; d++) x[(f * seq + p) * dim + d] = 1000 * f + 10 * p + d;
    const ours = pixelShuffle(x, frames, seq, dim, s);
    const theirs = pixelShuffleTranscribed(Strided.of(x, [frames, seq, dim]), s);
    assert.deepEqual(theirs.shape, [frames, seq / (s * s), dim * s * s]);
    assert.deepEqual(Array.from(ours), Array.from(theirs.contiguous().data), `frames ${frames} side ${side} dim ${dim} s ${s}`);
  }
  // Spot values for 4×4 patches, s = 2, dim 1: output token 1 (I=0, J=1) gathers patches 2, 3, 6, 7.
  const x = Float64Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual(Array.from(pixelShuffle(x, 1, 16, 1, 2)), [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
});

test('RoPE: rotate_half and apply_rotary_pos_emb against hand-derived values', () => {
  assert.deepEqual(Array.from(rotateHalf([1, 2, 3, 4])), [-3, -4, 1, 2]);
  // hd = 4, θ = 10000: inv_freq = [1, 1/100]; emb = [p, p/100, p, p/100].
  const inv = ropeInvFreq(4, 10000);
  assert.equal(inv[0], 1);
  assert.equal(inv[1], Math.fround(0.01));
  for (const p of [0, 1, 7]) {
    const x = Float64Array.from([1, 2, 3, 4]);
    applyRope(x, 0, 1, 4, p, inv);
    const a = p, b = p / 100; // angles (b carries f32 rounding of 1/100: < 1e-9 here)
    const want = [Math.cos(a) - 3 * Math.sin(a), 2 * Math.cos(b) - 4 * Math.sin(b), 3 * Math.cos(a) + Math.sin(a), 4 * Math.cos(b) + 2 * Math.sin(b)];
    assertClose(`rope position ${p}`, x, want, { atol: 1e-8, rtol: 0 });
  }
  // Several heads at an offset are rotated independently; hd = 64, θ = 1e5: inv_freq[i] = f32(1e5^(−i/32)).
  const inv64 = ropeInvFreq(64, 100000);
  assert.ok(Math.abs(inv64[16] - 100000 ** -0.5) < 1e-9);
  const v = Float64Array.from(randomF32(3 * 64, 5));
  const w = v.slice();
  applyRope(w, 64, 2, 64, 3, inv64);
  assert.deepEqual(Array.from(w.subarray(0, 64)), Array.from(v.subarray(0, 64)), 'head before the offset untouched');
  for (let h = 1; h < 3; h++) {
    const i = 5, c = Math.cos(Math.fround(3 * inv64[i])), s = Math.sin(Math.fround(3 * inv64[i]));
    assert.ok(Math.abs(w[h * 64 + i] - (v[h * 64 + i] * c - v[h * 64 + i + 32] * s)) < 1e-12);
    assert.ok(Math.abs(w[h * 64 + i + 32] - (v[h * 64 + i + 32] * c + v[h * 64 + i] * s)) < 1e-12);
  }
});

test('GQA: kvHeadFor == repeat_kv (expand + reshape), and GQA attention == MHA on repeated K/V', () => {
  const nKv = 3, rep = 3, nH = nKv * rep, sl = 4, hd = 2;
  const kv = Strided.of(Float64Array.from({ length: nKv * sl * hd }, (_, i) => i), [1, nKv, sl, hd]);
  // hidden_states[:, :, None, :, :].expand(b, nkv, n_rep, slen, hd).reshape(b, nkv·n_rep, slen, hd)
  const repeated = kv.unsqueeze(2).expand([1, nKv, rep, sl, hd]).reshape([1, nH, sl, hd]).contiguous().data;
  for (let h = 0; h < nH; h++) {
    const src = kvHeadFor(h, nH, nKv);
    assert.equal(src, Math.floor(h / rep));
    assert.deepEqual(Array.from(repeated.subarray(h * sl * hd, (h + 1) * sl * hd)), Array.from(kv.data.subarray(src * sl * hd, (src + 1) * sl * hd)), `query head ${h}`);
  }
  // Our layout is [S, heads, hd]; repeat through HF's [b, heads, S, hd] and compare the attentions.
  const sq = 3, sk = 5, d = 8, kvH = 2, qH = 6;
  const q = Float64Array.from(randomF32(sq * qH * d, 11)), k = Float64Array.from(randomF32(sk * kvH * d, 12)), v = Float64Array.from(randomF32(sk * kvH * d, 13));
  const expand = (t: Float64Array) => Strided.of(t, [1, sk, kvH, d]).permute(0, 2, 1, 3).unsqueeze(2).expand([1, kvH, qH / kvH, sk, d])
    .reshape([1, qH, sk, d]).permute(0, 2, 1, 3).reshape([sk, qH * d]).data;
  for (const causal of [null, 2]) {
    const gqa = attention(q, k, v, sq, sk, qH, kvH, d, causal);
    const mha = attention(q, expand(k), expand(v), sq, sk, qH, qH, d, causal);
    assert.deepEqual(Array.from(gqa), Array.from(mha), `causal ${causal}`);
  }
  // Causal offset 2: query 0 sits at position 2 and sees keys 0..2 only: changing key 3 or 4 leaves it unchanged.
  const k2 = k.slice(); k2.fill(9, 3 * kvH * d);
  const a = attention(q, k, v, sq, sk, qH, kvH, d, 2), b = attention(q, k2, v, sq, sk, qH, kvH, d, 2);
  assert.deepEqual(Array.from(a.subarray(0, qH * d)), Array.from(b.subarray(0, qH * d)));
  assert.notDeepEqual(Array.from(a.subarray(qH * d)), Array.from(b.subarray(qH * d)));
});

// ---------------------------------------------------------------------------------------------- tiny random model

const IMG = 49;
function tinyConfigJson(): Record<string, unknown> {
  return {
    model_type: 'idefics3', image_token_id: IMG, scale_factor: 2, tie_word_embeddings: false,
    vision_config: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, image_size: 32, patch_size: 8, layer_norm_eps: 1e-6 },
    text_config: {
      model_type: 'llama', vocab_size: 50, hidden_size: 96, intermediate_size: 80, num_hidden_layers: 2, num_attention_heads: 3,
      num_key_value_heads: 1, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 100000,
    },
  };
}

function randomWeights(cfgJson: unknown, seed: number): WeightMap {
  const m: WeightMap = new Map();
  let s = seed;
  for (const [name, shape] of expectedWeightShapes(parseIdefics3Config(cfgJson))) {
    const n = numel(shape);
    let data: Float32Array;
    if (/(norm\d?|layernorm)\.weight$/.test(name)) data = randomF32(n, s++, 0.2).map((x) => 1 + x);
    else if (name.endsWith('.bias')) data = randomF32(n, s++, 0.1);
    else if (name.includes('embed')) data = randomF32(n, s++, 0.5);
    else data = randomF32(n, s++, Math.sqrt(3 / numel(shape.slice(1)))); // unit-variance outputs
    m.set(name, { shape, data });
  }
  return m;
}

const PROMPT = [1, 7, IMG, IMG, IMG, IMG, 8, 2, IMG, IMG, IMG, IMG, 9, 3];
const tinyPixels = (seed: number): PixelTensor => ({ shape: [2, 3, 32, 32], data: randomF32(2 * 3 * 32 * 32, seed) });

test('tiny random model: deterministic, finite, image-sensitive, causal; KV-cached logits == full logits', () => {
  const cfg = tinyConfigJson(), weights = randomWeights(cfg, 100);
  const ref = new Idefics3Reference(cfg, weights);
  const px = tinyPixels(7);
  const t0 = performance.now(), c0 = process.cpuUsage();
  const feats = ref.imageFeatures(px)!;
  assert.deepEqual(feats.shape, [2, 4, 96]);
  const cont = [5, 11, 20, 33, 0];
  const all = [...PROMPT, ...cont];
  const full = ref.textForward(all, feats).logits;
  const ms = performance.now() - t0, cpu = process.cpuUsage(c0);
  assert.deepEqual(full.shape, [all.length, 50]);
  assert.ok(full.data.every(Number.isFinite), 'finite');
  const again = new Idefics3Reference(cfg, weights).forward(all, px);
  assert.deepEqual(Array.from(again.data), Array.from(full.data), 'bitwise deterministic');
  const spread = Math.max(...full.data) - Math.min(...full.data);
  assert.ok(spread > 0.5, `logits vary (spread ${spread})`);

  // Other pixels: rows before the first <image> are unchanged (causal), rows from it on change (merge applied).
  const other = ref.forward(all, tinyPixels(8));
  const V = 50;
  assert.deepEqual(Array.from(other.data.subarray(0, 2 * V)), Array.from(full.data.subarray(0, 2 * V)));
  for (let r = 2; r < all.length; r++) assert.ok(compare(other.data.subarray(r * V, (r + 1) * V), full.data.subarray(r * V, (r + 1) * V)).maxAbs > 1e-6, `row ${r} sees the image`);

  // Incremental: prefill the prompt, then one token, then two, then the rest; positions continue from the cache.
  const pre = ref.textForward(PROMPT, feats);
  let at = PROMPT.length;
  const rows: Float64Array[] = [pre.logits.data];
  for (const chunk of [cont.slice(0, 1), cont.slice(1, 3), cont.slice(3)]) {
    const r = ref.textForward(chunk, null, { pastKV: pre.pastKV });
    assert.equal(r.pastKV, pre.pastKV);
    rows.push(r.logits.data);
    at += chunk.length;
    assert.equal(pre.pastKV.length, at);
  }
  const inc = new Float64Array(rows.reduce((n, r) => n + r.length, 0));
  rows.reduce((o, r) => (inc.set(r, o), o + r.length), 0);
  const st = assertClose('incremental vs full logits', inc, full.data, { atol: 1e-9, rtol: 0 });
  console.log(`tiny random forward (${all.length} tokens, 2 frames): ${ms.toFixed(1)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU; incremental vs full ${fmtStats(st)}`);

  // 'last' logits = the last row of the full logits.
  const last = new Idefics3Reference(cfg, weights).textForward(all, feats, { logits: 'last' }).logits;
  assert.deepEqual(last.shape, [1, V]);
  assertClose('last row', last.data, full.data.subarray((all.length - 1) * V), { atol: 1e-12, rtol: 0 });
});

test('tiny random model: greedy with KV cache == argmax of full recomputation', () => {
  const cfg = tinyConfigJson(), ref = new Idefics3Reference(cfg, randomWeights(cfg, 300));
  const px = tinyPixels(9);
  const got = ref.greedy(PROMPT, px, 8, []);
  assert.equal(got.length, 8);
  const seq = [...PROMPT];
  for (const id of got) {
    // A generated <image> keeps its token embedding in HF, which a full recomputation cannot express: stop there.
    if (seq.slice(PROMPT.length).includes(IMG)) break;
    const logits = ref.forward(seq, px);
    assert.equal(id, argmax(logits.data.subarray((seq.length - 1) * 50)), `step ${seq.length - PROMPT.length}`);
    seq.push(id);
  }
  // EOS stops the run and is included.
  const eos = got[2];
  const stopped = ref.greedy(PROMPT, px, 8, [eos]);
  assert.deepEqual(stopped, got.slice(0, got.indexOf(eos) + 1));
  console.log(`greedy ids: ${got.join(' ')}`);
});

test('reference input checks: padding frames dropped, token/feature count, weights', () => {
  const cfg = tinyConfigJson(), weights = randomWeights(cfg, 100);
  const ref = new Idefics3Reference(cfg, weights);
  const px = tinyPixels(7);
  // An all-zero frame is padding (HF real_images_inds) and is dropped before the vision tower.
  const padded = new Float32Array(3 * 3 * 32 * 32);
  padded.set(px.data as Float32Array, 0);
  assert.deepEqual(Array.from(ref.imageFeatures({ shape: [3, 3, 32, 32], data: padded })!.data), Array.from(ref.imageFeatures(px)!.data));
  assert.throws(() => ref.forward(PROMPT.slice(0, 6), px), { code: 'ShapeMismatch' });
  assert.throws(() => ref.forward([1, 50], null), { code: 'InvalidArgument' });
  assert.throws(() => ref.visionForward({ shape: [1, 3, 16, 32], data: new Float32Array(3 * 16 * 32) }), { code: 'ShapeMismatch' });
  const feats = ref.imageFeatures(px);
  const { pastKV } = ref.textForward([1, 2], null);
  assert.throws(() => ref.textForward(PROMPT, feats, { pastKV }), { code: 'InvalidArgument' });
  assert.ok(new KVCache(2).length === 0);
  const missing = new Map(weights); missing.delete('lm_head.weight');
  assert.throws(() => new Idefics3Reference(cfg, missing), { code: 'CorruptCheckpoint' });
  // Tied: lm_head is not needed and embed_tokens serves as the head.
  const tied = new Idefics3Reference({ ...cfg, tie_word_embeddings: true }, missing);
  const a = tied.textForward([1, 2, 3], null).logits;
  const emb = weights.get('model.text_model.embed_tokens.weight')!;
  const tiedAsUntied = new Map(weights); tiedAsUntied.set('lm_head.weight', emb);
  assert.deepEqual(Array.from(a.data), Array.from(new Idefics3Reference(cfg, tiedAsUntied).textForward([1, 2, 3], null).logits.data));
  const wrong = new Map(weights); wrong.set('model.connector.modality_projection.proj.weight', { shape: [96, 64], data: new Float32Array(96 * 64) });
  assert.throws(() => new Idefics3Reference(cfg, wrong), { code: 'CorruptCheckpoint' });
});

// ---------------------------------------------------------------------------------------------- config parser

test('Idefics3 config: derived sizes, HF defaults, typed rejections', () => {
  // SmolVLM-256M-Instruct's sizes.
  const smol = parseIdefics3Config({
    model_type: 'idefics3', image_token_id: 49190, scale_factor: 4, tie_word_embeddings: false, torch_dtype: 'bfloat16',
    vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 512, patch_size: 16, model_type: 'idefics3' },
    text_config: { model_type: 'llama', vocab_size: 49280, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 100000, rope_scaling: null, rope_interleaved: false },
  });
  assert.equal(smol.imageSeqLen, 64);
  assert.equal(smol.connectorInputSize, 12288);
  assert.equal(smol.vision.numPatches, 1024);
  assert.equal(smol.vision.layerNormEps, 1e-6);
  assert.equal(smol.text.headDim, 64);
  assert.equal(smol.dtype, 'bfloat16');
  // Defaults: missing keys mean what they mean to transformers.
  // (HF's own vision defaults, 224 px / 32 px patches = 7 per side, cannot pixel-shuffle by 2: image_size given.)
  const d = parseIdefics3Config({ model_type: 'idefics3', image_token_id: 5, vision_config: { image_size: 448 }, text_config: { vocab_size: 100, hidden_size: 64, num_attention_heads: 4 } });
  assert.equal(d.scaleFactor, 2);
  assert.equal(d.tieWordEmbeddings, false);
  assert.equal(d.vision.hiddenSize, 1152);
  assert.equal(d.vision.layerNormEps, 1e-6);
  assert.throws(() => parseIdefics3Config({ model_type: 'idefics3', image_token_id: 5, vision_config: {}, text_config: { vocab_size: 100 } }), { code: 'UnsupportedModel' });
  assert.equal(d.vision.patchSize, 32);
  assert.equal(d.text.numKeyValueHeads, 4);
  assert.equal(d.text.headDim, 16);
  assert.equal(d.text.ropeTheta, 10000);
  assert.equal(d.text.rmsNormEps, 1e-6);
  assert.deepEqual(d.text.eosTokenIds, [2]);
  assert.equal(parseIdefics3Config({ ...tinyConfigJson(), text_config: { ...(tinyConfigJson().text_config as object), rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } } }).text.ropeTheta, 5e5);
  const bad = (patch: (c: Record<string, any>) => void, what: string) => {
    const c = structuredClone(tinyConfigJson()) as Record<string, any>;
    patch(c);
    assert.throws(() => parseIdefics3Config(c), (e: any) => e.code === 'UnsupportedModel' && typeof e.message === 'string', what);
  };
  bad((c) => { c.model_type = 'llava'; }, 'model_type');
  bad((c) => { delete c.model_type; }, 'no model_type');
  bad((c) => { delete c.text_config; }, 'no text_config');
  bad((c) => { c.text_config.num_key_value_heads = 2; }, 'heads % kv');
  bad((c) => { delete c.text_config.head_dim; c.text_config.num_attention_heads = 5; }, 'hidden % heads');
  bad((c) => { c.image_token_id = 50; }, 'image token outside vocab');
  // image_size not a multiple of patch_size: image_size // patch_size patches a side, as transformers (SigLIP-so400m: 384 / 14 → 27).
  assert.equal(parseIdefics3Config({ ...tinyConfigJson(), vision_config: { ...(tinyConfigJson().vision_config as object), image_size: 36 } }).vision.patchesPerSide, 4);
  bad((c) => { c.vision_config.patch_size = 40; }, 'patch_size > image_size');
  bad((c) => { c.vision_config.image_size = 24; }, 'patch grid % scale_factor');
  bad((c) => { c.text_config.rope_scaling = { rope_type: 'linear', factor: 2 }; }, 'rope scaling');
  bad((c) => { c.text_config.hidden_act = 'gelu'; }, 'text act');
  bad((c) => { c.text_config.hidden_size = '96'; }, 'string size');
  bad((c) => { c.text_config.attention_bias = true; }, 'attention bias');
  assert.throws(() => parseIdefics3Config(null), { code: 'UnsupportedModel' });
});

// ---------------------------------------------------------------------------------------------- safetensors

test('read-safetensors: F32 / BF16 / F16 decoding and offset checks', () => {
  const f32 = new Float32Array([1.5, -2.25, 3e-8]);
  const bf16 = new Uint16Array([0x3f80, 0xc040, 0x0001]); // 1, -3, smallest subnormal 2^-133
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]); // 1, -2, 2^-24, 65504
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
    b: { dtype: 'BF16', shape: [1, 3], data_offsets: [12, 18] },
    c: { dtype: 'F16', shape: [2, 2], data_offsets: [18, 26] },
  });
  // Header padded (8-aligned data: typed-array fast path) and not (DataView path).
  for (const pad of [0, (8 - (header.length % 8)) % 8 || 8]) {
    const hb = new TextEncoder().encode(header + ' '.repeat(pad));
    const file = new Uint8Array(8 + hb.length + 26);
    new DataView(file.buffer).setBigUint64(0, BigInt(hb.length), true);
    file.set(hb, 8);
    file.set(new Uint8Array(f32.buffer), 8 + hb.length);
    file.set(new Uint8Array(bf16.buffer), 8 + hb.length + 12);
    file.set(new Uint8Array(f16.buffer), 8 + hb.length + 18);
    const m = parseSafetensors(file);
    assert.deepEqual([...m.keys()], ['a', 'b', 'c']);
    assert.deepEqual(Array.from(m.get('a')!.data), Array.from(f32));
    assert.deepEqual(m.get('b')!.shape, [1, 3]);
    assert.deepEqual(Array.from(m.get('b')!.data), [1, -3, 2 ** -133]);
    assert.deepEqual(Array.from(m.get('c')!.data), [1, -2, 2 ** -24, 65504]);
    assert.throws(() => parseSafetensors(file.subarray(0, file.length - 1)), { code: 'CorruptCheckpoint' });
  }
  assert.ok(Number.isNaN(f16ToNumber(0x7e00)));
});

// ---------------------------------------------------------------------------------------------- tiny trained model

const root = fileURLToPath(new URL('../../', import.meta.url));
// WEBVLM_TINY_DIR: another directory of the same layout (checkpoint/ + fixture.json), e.g. a transformers-made one.
const tinyDir = process.env.WEBVLM_TINY_DIR ?? `${root}models/tiny/`;
const haveTiny = existsSync(`${tinyDir}fixture.json`) && existsSync(`${tinyDir}checkpoint/model.safetensors`) && existsSync(`${tinyDir}checkpoint/config.json`);

/** Tolerance vs torch f32: 1e-4 of the tensor's largest |value| (+1e-4 relative per element). */
function checkAgainstTorch(what: string, ours: Float64Array, theirs: Float32Array): string {
  let scale = 1e-30;
  for (const x of theirs) scale = Math.max(scale, Math.abs(x));
  const st = assertClose(what, ours, theirs, { atol: 1e-4 * scale, rtol: 1e-4 });
  return `${fmtStats(st)} (max|x| ${scale.toPrecision(3)}, maxAbs/max|x| ${(st.maxAbs / scale).toExponential(1)})`;
}

test('tiny trained model: f64 reference == torch f32 fixture (vision, connector, logits, greedy)', () => {
  assert.ok(haveTiny, `${tinyDir}fixture.json and ${tinyDir}checkpoint/ are committed`);
  const cfgJson = JSON.parse(readFileSync(`${tinyDir}checkpoint/config.json`, 'utf8'));
  const t0 = performance.now(), c0 = process.cpuUsage();
  const ref = new Idefics3Reference(cfgJson, readSafetensors(`${tinyDir}checkpoint/model.safetensors`));
  const fx = JSON.parse(readFileSync(`${tinyDir}fixture.json`, 'utf8'));
  const eos: number[] = [fx.eos_token_id ?? ref.config.text.eosTokenIds].flat();
  assert.ok(fx.examples.length > 0, 'fixture has examples');
  for (const [i, ex] of (fx.examples as Record<string, any>[]).entries()) {
    const px = fixtureTensor(ex, 'pixel_values');
    const vision = ref.visionForward(px);
    const P = vision.shape[1] * vision.shape[2];
    const lines = [`vision frame 0: ${checkAgainstTorch(`example ${i} vision frame 0`, vision.data.subarray(0, P), fixtureTensor(ex, 'vision_frame0').data)}`];
    const feats = ref.connector(vision);
    const F = feats.shape[1] * feats.shape[2];
    lines.push(`image features frame 0: ${checkAgainstTorch(`example ${i} features frame 0`, feats.data.subarray(0, F), fixtureTensor(ex, 'image_features_frame0').data)}`);
    // The fixture holds the logits of the last rows of the prompt (logits_positions).
    const want = fixtureTensor(ex, 'logits');
    const [rows, V] = want.shape;
    assert.equal(V, ref.config.text.vocabSize, 'vocab');
    const logits = ref.textForward(ex.input_ids, feats).logits;
    assert.deepEqual(ex.logits_positions, Array.from({ length: rows }, (_, k) => ex.input_ids.length - rows + k));
    lines.push(`logits (last ${rows} rows): ${checkAgainstTorch(`example ${i} logits`, logits.data.subarray((logits.shape[0] - rows) * V), want.data)}`);
    const gen = ref.greedyWithFeatures(ex.input_ids, feats, 8, eos);
    assert.deepEqual(gen, ex.generated_ids, `example ${i} greedy ids`);
    console.log(`tiny fixture ${ex.name ?? i} (${ex.input_ids.length} tokens, ${px.shape[0]} frames):\n  ${lines.join('\n  ')}\n  greedy ${gen.join(' ')} == torch`);
  }
  const cpu = process.cpuUsage(c0);
  console.log(`tiny fixture: ${fx.examples.length} examples in ${(performance.now() - t0).toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`);
});
