/**
 * Outside check of the attention semantics (Node): single-op `com.microsoft.GroupQueryAttention` models
 * run on onnxruntime-node (CPU, an implementation nobody here wrote) — causal GQA, a prefill continuing
 * after cached tokens (past_key/past_value), and decode. ORT is compared with our f64 reference, and,
 * where Node Dawn offers an adapter (lavapipe), with our GPU kernels on the same inputs.
 */
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGroupQueryAttentionModel } from '../../bench/onnx-models.ts';
import { readF32, upload } from '../../src/gpu/io.ts';
import { attentionPrefill } from '../../src/kernels/attention_prefill.ts';
import { attentionDecode, attentionDecodeScratchBytes } from '../../src/kernels/attention_decode.ts';
import { assertClose, fmtStats, randomF32 } from '../harness/check.ts';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { attentionRef, toCacheLayout } from './attention_ref.ts';

interface Case {
  /** New tokens. */
  S: number;
  /** Cached tokens before them. */
  P: number;
  heads: number;
  kvHeads: number;
  hd: number;
}

const CASES: Case[] = [
  { S: 65, P: 0, heads: 9, kvHeads: 3, hd: 64 }, // SmolVLM text prefill
  { S: 130, P: 0, heads: 2, kvHeads: 1, hd: 72 },
  { S: 7, P: 37, heads: 9, kvHeads: 3, hd: 64 }, // prefill after cached tokens
  { S: 1, P: 299, heads: 9, kvHeads: 3, hd: 64 }, // decode at context 300
  { S: 1, P: 999, heads: 9, kvHeads: 3, hd: 64 }, // decode at context 1000 (several splits)
];

const label = (c: Case) => `S${c.S} past${c.P} h${c.heads}/${c.kvHeads} d${c.hd}`;

/** ORT CPU keeps f32 throughout; agreement with f64 at ~1e-7 relative is what it showed elsewhere. */
const ORT_TOL = { atol: 1e-5, rtol: 1e-4 };

function inputs(c: Case, seed: number) {
  const T = c.P + c.S;
  return {
    q: randomF32(c.S * c.heads * c.hd, seed, 2),
    k: randomF32(T * c.kvHeads * c.hd, seed + 1),
    v: randomF32(T * c.kvHeads * c.hd, seed + 2),
  };
}

/** Head-major `[kvHeads, rows, hd]` of rows [from, to) of a tokens-layout array (ORT's past_key layout). */
function headMajor(x: Float32Array, from: number, to: number, kvHeads: number, hd: number): Float32Array {
  return toCacheLayout(x.subarray(from * kvHeads * hd, to * kvHeads * hd), to - from, kvHeads, hd, to - from);
}

async function runOrt(c: Case, x: ReturnType<typeof inputs>): Promise<Float32Array> {
  const withPast = c.P > 0;
  const bytes = buildGroupQueryAttentionModel({ heads: c.heads, kvHeads: c.kvHeads, headDim: c.hd, withPast });
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  const kw = c.kvHeads * c.hd, T = c.P + c.S;
  const feeds: Record<string, ort.Tensor> = {
    query: new ort.Tensor('float32', x.q, [1, c.S, c.heads * c.hd]),
    key: new ort.Tensor('float32', x.k.slice(c.P * kw), [1, c.S, kw]),
    value: new ort.Tensor('float32', x.v.slice(c.P * kw), [1, c.S, kw]),
    seqlens_k: new ort.Tensor('int32', Int32Array.from([T - 1]), [1]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.from([T]), []),
  };
  if (withPast) {
    feeds.past_key = new ort.Tensor('float32', headMajor(x.k, 0, c.P, c.kvHeads, c.hd), [1, c.kvHeads, c.P, c.hd]);
    feeds.past_value = new ort.Tensor('float32', headMajor(x.v, 0, c.P, c.kvHeads, c.hd), [1, c.kvHeads, c.P, c.hd]);
  }
  try {
    const out = await session.run(feeds);
    return out.output.data as Float32Array;
  } finally {
    await session.release();
  }
}

const reference = (c: Case, x: ReturnType<typeof inputs>) =>
  attentionRef({ ...x, seqLen: c.S, heads: c.heads, kvHeads: c.kvHeads, headDim: c.hd, causal: true, past: c.P });

describe('attention vs onnxruntime-node GroupQueryAttention (CPU)', () => {
  CASES.forEach((c, i) => {
    test(`ORT == f64 reference: ${label(c)}`, async (t) => {
      const x = inputs(c, 500 + 7 * i);
      const got = await runOrt(c, x);
      const s = assertClose(`ORT GQA ${label(c)}`, got, reference(c, x), ORT_TOL);
      t.diagnostic(`onnxruntime-node GQA vs f64 reference, ${label(c)}: ${fmtStats(s)}`);
    });
  });
});

describe('attention kernels vs onnxruntime-node GroupQueryAttention (Node Dawn)', () => {
  const dawn = useDawnContext();

  CASES.flatMap((c, i) => (['tile', 'rows'] as const).map((variant) => ({ c, i, variant }))).forEach(({ c, i, variant }) => {
    test(`GPU (${variant}) == ORT: ${label(c)}`, async (t) => {
      const { gpu, why } = dawn;
      if (!gpu) return t.skip(`no Dawn adapter (lavapipe needs Mesa ≥ 25): ${why}`);
      const x = inputs(c, 500 + 7 * i);
      const ortOut = await runOrt(c, x);
      const T = c.P + c.S, capacity = T + 5, qw = c.heads * c.hd;
      const layout = { kind: 'cache' as const, capacity };
      const qb = upload(gpu, x.q);
      const kb = upload(gpu, toCacheLayout(x.k, T, c.kvHeads, c.hd, capacity));
      const vb = upload(gpu, toCacheLayout(x.v, T, c.kvHeads, c.hd, capacity));
      const out = gpu.allocator.create(c.S * qw * 4);
      const rec = gpu.recorder();
      let scratch: GPUBuffer | undefined;
      let kernel: string;
      if (c.S === 1) {
        const shape = { tokens: 1, kvLen: T, heads: c.heads, kvHeads: c.kvHeads, headDim: c.hd, variant };
        const bytes = attentionDecodeScratchBytes(gpu, shape);
        if (bytes) scratch = gpu.allocator.create(bytes);
        attentionDecode(gpu, rec, { ...shape, variant, q: qb, k: kb, v: vb, out, scratch, kvLayout: layout });
        kernel = `attention_decode/${variant}`;
      } else {
        attentionPrefill(gpu, rec, { variant, q: qb, k: kb, v: vb, out, seqLen: c.S, past: c.P, heads: c.heads, kvHeads: c.kvHeads, headDim: c.hd, causal: true, kvLayout: layout });
        kernel = `attention_prefill/${variant}`;
      }
      rec.submit();
      const got = await readF32(gpu, out, c.S * qw);
      const s = assertClose(`${kernel} vs ORT ${label(c)}`, got, ortOut, ORT_TOL);
      t.diagnostic(`${kernel} (${gpu.caps.adapter.description || gpu.caps.adapter.device}) vs onnxruntime-node GQA, ${label(c)}: ${fmtStats(s)}`);
      rec.destroy();
      for (const b of [qb, kb, vb, out, scratch]) if (b) gpu.allocator.destroy(b);
    });
  });
});
