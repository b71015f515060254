/**
 * The shared blocks' options on the GPU (Node, Dawn) against the f64 reference blocks (tests/reference/blocks-ref.ts),
 * on random small configs: options no real checkpoint of a supported family exercises yet (InternViT's class token,
 * layer scale, exact GELU, no post-norm; projections without/with biases; RoPE 'linear' and 'dynamic'; Granite's
 * four multipliers) must still agree with transformers' semantics before a family turns them on.
 *
 * Weights are uploaded straight into the blocks' structures (no checkpoint, no plan), f32: the GPU path computes in
 * f32 with f32 accumulation, the reference in f64, so agreement is f32 rounding through two layers (relL2 ~1e-7);
 * the bound 1e-5 still separates rounding from any O(1) option bug (a missing scale, a wrong frequency).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dawnContext } from '../harness/dawn.ts';
import { compare, randomF32 } from '../harness/check.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { readF32, upload } from '../../src/gpu/io.ts';
import { Workspace, type Linear } from '../../src/models/layers.ts';
import { vitForward, type VitConfig, type VitWeights } from '../../src/models/siglip.ts';
import { KvCache, llamaForward, type DecoderConfig, type LlamaWeights } from '../../src/models/llama.ts';
import { ropeFrequencies } from '../../src/models/rope-scaling.ts';
import {
  decoderForwardRef, KVCache, refRopeFrequencies, vitForwardRef,
  type DecoderRefConfig, type DecoderRefWeights, type RefLinear, type VitRefConfig, type VitRefWeights,
} from '../reference/blocks-ref.ts';

let seed = 1000;
const rand = (n: number, scale: number) => randomF32(n, seed++, scale);
const concat = (...xs: ArrayLike<number>[]) => {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x, o);
    o += x.length;
  }
  return out;
};

/** A random Linear [N, K] (unit-variance outputs), with or without a bias. */
function refLinear(N: number, K: number, bias: boolean): RefLinear {
  return { w: rand(N * K, Math.sqrt(3 / K)), b: bias ? rand(N, 0.1) : undefined };
}

describe('shared blocks: options vs the f64 reference blocks (Node, Dawn)', () => {
  let gpu: GpuContext | null = null;
  let why = '';
  const held: GPUBuffer[] = [];
  const buf = (x: ArrayLike<number>) => {
    const b = upload(gpu!, Float32Array.from(x));
    held.push(b);
    return b;
  };
  /** Rows of several reference linears fused into one GPU Linear (q|k|v, gate|up). */
  const fused = (K: number, ...ls: RefLinear[]): Linear => {
    const N = ls.reduce((n, l) => n + l.w.length, 0) / K;
    const hasBias = ls.some((l) => l.b);
    return { N, K, f32: buf(concat(...ls.map((l) => l.w))), bias: hasBias ? buf(concat(...ls.map((l) => l.b ?? new Float32Array(l.w.length / K)))) : undefined };
  };
  const gpuLinear = (l: RefLinear, N: number, K: number): Linear => ({ N, K, f32: buf(l.w), bias: l.b ? buf(l.b) : undefined });

  before(async () => {
    ({ gpu, why } = await dawnContext());
  });
  after(() => {
    for (const b of held) gpu?.allocator.destroy(b);
    gpu?.destroy();
  });

  // ------------------------------------------------------------------------------------------------ ViT

  function vitCase(opts: Pick<VitRefConfig, 'classToken' | 'layerScale' | 'postNorm' | 'hiddenAct'>, biases: { qkv: boolean; rest: boolean }) {
    const cfg: VitRefConfig & VitConfig = {
      hiddenSize: 64, intermediateSize: 96, numAttentionHeads: 4, headDim: 16, numChannels: 3, imageSize: 32, patchSize: 8,
      numPatches: 16, layerNormEps: 1e-6, ...opts,
    };
    const D = cfg.hiddenSize, I = cfg.intermediateSize, kk = 3 * 8 * 8, T = cfg.numPatches + (opts.classToken ? 1 : 0);
    const norm = () => ({ w: rand(D, 0.2).map((x) => 1 + x), b: rand(D, 0.1) });
    const ref: VitRefWeights = {
      patch: refLinear(D, kk, true), pos: rand(T * D, 0.5), cls: opts.classToken ? rand(D, 0.5) : undefined,
      layers: [0, 1].map(() => ({
        ln1: norm(), ln2: norm(),
        q: refLinear(D, D, biases.qkv), k: refLinear(D, D, biases.qkv), v: refLinear(D, D, biases.qkv),
        out: refLinear(D, D, biases.rest), fc1: refLinear(I, D, biases.rest), fc2: refLinear(D, I, biases.rest),
        ls1: opts.layerScale ? rand(D, 1) : undefined, ls2: opts.layerScale ? rand(D, 1) : undefined,
      })),
      post: opts.postNorm === false ? undefined : norm(),
    };
    return { cfg, ref };
  }

  const VIT_CASES: [string, Pick<VitRefConfig, 'classToken' | 'layerScale' | 'postNorm' | 'hiddenAct'>, { qkv: boolean; rest: boolean }][] = [
    ['SigLIP (no options: tanh GELU, post-norm, biases)', { hiddenAct: 'gelu_pytorch_tanh' }, { qkv: true, rest: true }],
    ['InternViT-style: class token, layer scale, exact GELU, no post-norm', { hiddenAct: 'gelu', classToken: true, layerScale: true, postNorm: false }, { qkv: true, rest: true }],
    ['no q/k/v bias, no out/fc biases, class token with post-norm', { hiddenAct: 'gelu', classToken: true }, { qkv: false, rest: false }],
  ];

  for (const [name, opts, biases] of VIT_CASES) {
    test(`ViT: ${name}`, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const { cfg, ref } = vitCase(opts, biases);
      const D = cfg.hiddenSize, I = cfg.intermediateSize;
      const w: VitWeights = {
        patch: gpuLinear(ref.patch, D, 3 * 64), position: buf(ref.pos), classEmbedding: ref.cls ? buf(ref.cls) : undefined,
        layers: ref.layers.map((L) => ({
          ln1: { weight: buf(L.ln1.w), bias: buf(L.ln1.b) }, ln2: { weight: buf(L.ln2.w), bias: buf(L.ln2.b) },
          qkv: fused(D, L.q, L.k, L.v), out: gpuLinear(L.out, D, D), fc1: gpuLinear(L.fc1, I, D), fc2: gpuLinear(L.fc2, D, I),
          ls1: L.ls1 ? buf(L.ls1) : undefined, ls2: L.ls2 ? buf(L.ls2) : undefined,
        })),
        post: ref.post ? { weight: buf(ref.post.w), bias: buf(ref.post.b) } : undefined,
      };
      const frames = 3;
      const pixels = rand(frames * 3 * 32 * 32, 1);
      const want = vitForwardRef(cfg, ref, { shape: [frames, 3, 32, 32], data: pixels });
      // The options are live: the same weights without them (the class token and layer scales ignored) differ O(1).
      const plain = vitForwardRef({ ...cfg, classToken: false, layerScale: false, hiddenAct: 'gelu_pytorch_tanh' },
        { ...ref, pos: Array.from(ref.pos).slice(cfg.classToken ? D : 0), cls: undefined }, { shape: [frames, 3, 32, 32], data: pixels });
      const ws = new Workspace(gpu);
      const rec = gpu.recorder('vit-test');
      const px = buf(pixels);
      const out = vitForward(gpu, rec, ws, w, cfg, px, frames);
      rec.submit();
      const got = await readF32(gpu, out, frames * cfg.numPatches * D);
      ws.release();
      rec.destroy();
      const s = compare(got, want.data);
      t.diagnostic(`${name}: [${want.shape}] relL2 ${s.relL2.toExponential(2)}, maxAbs ${s.maxAbs.toExponential(2)}`);
      assert.ok(s.relL2 < 1e-5, `relL2 ${s.relL2}`);
      if (opts.classToken || opts.layerScale || opts.hiddenAct === 'gelu') assert.ok(compare(got, plain.data).relL2 > 1e-3, 'the options change the output');
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }

  // ------------------------------------------------------------------------------------------------ decoder

  function decoderCase(opts: Partial<DecoderRefConfig>, biases: { qkv: boolean; o: boolean; mlp: boolean }) {
    const cfg: DecoderRefConfig & DecoderConfig = {
      vocabSize: 301, hiddenSize: 96, intermediateSize: 80, numHiddenLayers: 2, numAttentionHeads: 3, numKeyValueHeads: 1, headDim: 32,
      rmsNormEps: 1e-5, ropeTheta: 10000, ...opts,
    };
    const H = cfg.hiddenSize, I = cfg.intermediateSize, hd = cfg.headDim, nh = cfg.numAttentionHeads, nkv = cfg.numKeyValueHeads;
    const ref: DecoderRefWeights = {
      layers: [0, 1].map(() => ({
        inputNorm: rand(H, 0.2).map((x) => 1 + x), postNorm: rand(H, 0.2).map((x) => 1 + x),
        q: refLinear(nh * hd, H, biases.qkv), k: refLinear(nkv * hd, H, biases.qkv), v: refLinear(nkv * hd, H, biases.qkv),
        o: refLinear(H, nh * hd, biases.o),
        gate: refLinear(I, H, biases.mlp), up: refLinear(I, H, biases.mlp), down: refLinear(H, I, biases.mlp),
      })),
      norm: rand(H, 0.2).map((x) => 1 + x),
      head: rand(cfg.vocabSize * H, 0.5),
    };
    return { cfg, ref };
  }

  const DECODER_CASES: [string, Partial<DecoderRefConfig>, { qkv: boolean; o: boolean; mlp: boolean }][] = [
    ['Llama (no options)', {}, { qkv: false, o: false, mlp: false }],
    ['Granite multipliers (×12 embeddings, scale 1/64, residual ×0.22, logits ÷8) + q/k/v/o and MLP biases',
      { embeddingMultiplier: 12, attentionScale: 0.015625, residualMultiplier: 0.22, logitsDivisor: 8 }, { qkv: true, o: true, mlp: true }],
    ['RoPE linear ×4, q/k/v biases only (Qwen2-style)', { ropeScaling: { type: 'linear', factor: 4 }, ropeTheta: 1e6 }, { qkv: true, o: false, mlp: false }],
    ['RoPE dynamic ×2 past max_position_embeddings 8', { ropeScaling: { type: 'dynamic', factor: 2, maxPositions: 8 } }, { qkv: false, o: false, mlp: false }],
  ];

  for (const [name, opts, biases] of DECODER_CASES) {
    test(`decoder: ${name}: prefill, decode steps, a chunk after them`, async (t) => {
      if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
      const { cfg, ref } = decoderCase(opts, biases);
      const H = cfg.hiddenSize, V = cfg.vocabSize;
      const w: LlamaWeights = {
        embed: { dtype: 'f32', data: buf(new Float32Array(4)), V: 1, D: 4 }, // unused: rows are uploaded embedded
        layers: ref.layers.map((L) => ({
          inputNorm: buf(L.inputNorm), postNorm: buf(L.postNorm),
          qkv: fused(H, L.q, L.k, L.v), o: gpuLinear(L.o, H, cfg.numAttentionHeads * cfg.headDim),
          gateUp: fused(H, L.gate, L.up), down: gpuLinear(L.down, H, cfg.intermediateSize),
        })),
        norm: buf(ref.norm),
        lmHead: { N: V, K: H, f32: buf(ref.head) },
      };
      const cache = new KvCache(gpu, cfg, 32);
      const refCache = new KVCache(cfg.numHiddenLayers);
      // Positions 0..6 (prefill), 7, 8, 9 (decode: dynamic RoPE crosses max 8 here), 10..12 (a chunk with a past).
      let worst = 0;
      const inputs: Float32Array[] = [], outputs: Float32Array[] = [];
      for (const S of [7, 1, 1, 1, 3]) {
        const x = rand(S * H, 1);
        inputs.push(x);
        const want = decoderForwardRef(cfg, ref, Float64Array.from(x), refCache);
        const ws = new Workspace(gpu);
        const rec = gpu.recorder('decoder-test');
        const h = ws.f32(S * H);
        gpu.device.queue.writeBuffer(h, 0, x as Float32Array<ArrayBuffer>);
        const logits = ws.f32(S * V);
        llamaForward(gpu, rec, ws, w, cfg, cache, h, S, cache.length, logits, S);
        rec.submit();
        const got = await readF32(gpu, logits, S * V);
        outputs.push(got);
        ws.release();
        rec.destroy();
        const s = compare(got, want.data);
        worst = Math.max(worst, s.relL2);
        assert.ok(s.relL2 < 1e-5, `${S} rows at ${cache.length}: relL2 ${s.relL2}`);
        cache.length += S;
      }
      t.diagnostic(`${name}: 13 positions in 5 calls, worst logits relL2 ${worst.toExponential(2)}`);
      if (Object.keys(opts).length || biases.qkv || biases.mlp) {
        // The options are live: the option-free reference on the same rows (one call) is O(1) away from the GPU's.
        const plainCfg: DecoderRefConfig = { ...cfg, ropeScaling: undefined, ropeTheta: 10000, attentionScale: undefined, embeddingMultiplier: undefined, residualMultiplier: undefined, logitsDivisor: undefined };
        const strip = (l: RefLinear): RefLinear => ({ w: l.w });
        const plainW = { ...ref, layers: ref.layers.map((L) => ({ ...L, q: strip(L.q), k: strip(L.k), v: strip(L.v), o: strip(L.o), gate: strip(L.gate), up: strip(L.up), down: strip(L.down) })) };
        const all = new Float64Array(inputs.reduce((n, x) => n + x.length, 0));
        inputs.reduce((o, x) => (all.set(x, o), o + x.length), 0);
        const plain = decoderForwardRef(plainCfg, plainW, all, new KVCache(cfg.numHiddenLayers));
        const got = new Float32Array(outputs.reduce((n, x) => n + x.length, 0));
        outputs.reduce((o, x) => (got.set(x, o), o + x.length), 0);
        // Dynamic RoPE only acts from position 8 on: compare those rows.
        const from = opts.ropeScaling?.type === 'dynamic' ? 9 * V : 0;
        assert.ok(compare(got.subarray(from), plain.data.subarray(from)).relL2 > 1e-3, 'the options change the logits');
      }
      cache.destroy(gpu);
      assert.deepEqual(gpu.uncapturedErrors, []);
    });
  }

  test('RoPE frequencies: the GPU path\'s host table == the reference\'s (linear, dynamic below/above max)', () => {
    for (const [scaling, L] of [[{ type: 'linear', factor: 4 }, 5], [{ type: 'dynamic', factor: 2, maxPositions: 8 }, 8], [{ type: 'dynamic', factor: 2, maxPositions: 8 }, 13]] as const) {
      const ours = ropeFrequencies(64, { theta: 1e6, scaling }, L);
      const theirs = refRopeFrequencies(64, 1e6, scaling, L);
      assert.deepEqual(Array.from(ours), Array.from(theirs), `${scaling.type} L=${L}`);
    }
    // Dynamic at or below max is the default table; above, the base grows (lower frequencies).
    const d = { type: 'dynamic', factor: 2, maxPositions: 8 } as const;
    assert.deepEqual(Array.from(ropeFrequencies(64, { theta: 1e4, scaling: d }, 8)), Array.from(ropeFrequencies(64, { theta: 1e4, scaling: { type: 'default' } }, 8)));
    assert.ok(ropeFrequencies(64, { theta: 1e4, scaling: d }, 9)[5] < ropeFrequencies(64, { theta: 1e4, scaling: d }, 8)[5]);
  });
});
