/**
 * Flash-attention prefill vs the f64 reference: ragged lengths (S = 1, 7, 65, 130 against tiles of
 * 16–64 vectors), SmolVLM text (9/3), SigLIP (12/12), 2/1 and MQA head groups, head dims 64, 72, 128,
 * causal (with a past offset, from the KV cache layout too), bidirectional, key padding, batches,
 * and a fused QKV buffer read through strides and offsets; all three variants.
 */
import { attentionPrefill, type AttentionPrefillArgs, type AttentionVariant } from '../../src/kernels/attention_prefill.ts';
import type { KvLayout } from '../../src/kernels/attention_common.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';
import { attentionRef, toCacheLayout } from './attention_ref.ts';

interface Spec {
  S: number;
  heads: number;
  kvHeads: number;
  hd: number;
  causal: boolean;
  batch?: number;
  past?: number;
  keys?: number;
  kvLen?: number;
  /** Read K/V from the KV-cache layout with this capacity. */
  capacity?: number;
  /** Q, K, V interleaved in one [S, (heads + 2·kvHeads)·hd] buffer (a fused QKV projection). */
  fused?: boolean;
  variant: AttentionVariant;
}

/**
 * Tolerance: outputs are convex combinations of V entries in [-1, 1); f32 scores carry ~hd·2⁻²⁴ relative
 * error and exp2/online rescaling a few ulps more, so 2e-5 absolute is ~100× the expected error yet
 * far below any real bug (a wrong mask or head mapping moves outputs by ~1e-1).
 */
const TOL = { atol: 2e-5, rtol: 1e-4 };

export async function checkPrefill({ gpu, log }: CaseContext, s: Spec, seed: number): Promise<void> {
  const B = s.batch ?? 1, past = s.past ?? 0;
  const keys = s.keys ?? (s.causal ? past + s.S : s.S);
  const qw = s.heads * s.hd, kw = s.kvHeads * s.hd;
  // Scale 2 on Q makes the softmax peaked enough that masking and head-mapping mistakes show.
  const q = randomF32(B * s.S * qw, seed, 2), k = randomF32(B * keys * kw, seed + 1), v = randomF32(B * keys * kw, seed + 2);
  const ref = attentionRef({ q, k, v, seqLen: s.S, heads: s.heads, kvHeads: s.kvHeads, headDim: s.hd, causal: s.causal, batch: B, past, keys, kvLen: s.kvLen });
  const out = gpu.allocator.create(B * s.S * qw * 4);
  const base: Omit<AttentionPrefillArgs, 'q' | 'k' | 'v' | 'out'> = {
    seqLen: s.S, heads: s.heads, kvHeads: s.kvHeads, headDim: s.hd, causal: s.causal, batch: B, past, keys, kvLen: s.kvLen, variant: s.variant,
  };
  const bufs: GPUBuffer[] = [out];
  const rec = gpu.recorder();
  if (s.fused) {
    // Fused QKV: row i = [q_i | k_i | v_i]; only valid for S query rows = keys rows, no past.
    const w = qw + 2 * kw;
    const qkv = new Float32Array(s.S * w);
    for (let i = 0; i < s.S; i++) {
      qkv.set(q.subarray(i * qw, (i + 1) * qw), i * w);
      qkv.set(k.subarray(i * kw, (i + 1) * kw), i * w + qw);
      qkv.set(v.subarray(i * kw, (i + 1) * kw), i * w + qw + kw);
    }
    const b = upload(gpu, qkv);
    bufs.push(b);
    attentionPrefill(gpu, rec, { ...base, q: b, k: b, v: b, out, qStride: w, kvLayout: { kind: 'tokens', kvStride: w }, kOffset: qw, vOffset: qw + kw });
  } else {
    let kb: GPUBuffer, vb: GPUBuffer, kvLayout: KvLayout = { kind: 'tokens' };
    if (s.capacity !== undefined) {
      kb = upload(gpu, toCacheLayout(k, keys, s.kvHeads, s.hd, s.capacity));
      vb = upload(gpu, toCacheLayout(v, keys, s.kvHeads, s.hd, s.capacity));
      kvLayout = { kind: 'cache', capacity: s.capacity };
    } else {
      kb = upload(gpu, k);
      vb = upload(gpu, v);
    }
    const qb = upload(gpu, q);
    bufs.push(qb, kb, vb);
    attentionPrefill(gpu, rec, { ...base, q: qb, k: kb, v: vb, out, kvLayout });
  }
  rec.submit();
  const got = await readF32(gpu, out, B * s.S * qw);
  const what = `prefill ${describe(s)}`;
  const st = assertClose(what, got, ref, TOL);
  log(`${what}: ${fmtStats(st)}`);
  rec.destroy();
  for (const b of bufs) gpu.allocator.destroy(b);
}

function describe(s: Spec): string {
  return [
    s.variant, `S${s.S}`, `h${s.heads}/${s.kvHeads}`, `d${s.hd}`, s.causal ? 'causal' : 'bidir',
    s.batch ? `batch${s.batch}` : '', s.past ? `past${s.past}` : '', s.keys !== undefined ? `keys${s.keys}` : '',
    s.kvLen !== undefined ? `kvLen${s.kvLen}` : '', s.capacity ? `cache${s.capacity}` : '', s.fused ? 'fusedQKV' : '',
  ].filter(Boolean).join(' ');
}

const shapes: Array<Omit<Spec, 'variant'>> = [
  // SmolVLM text: 9 query / 3 KV heads, d64, causal.
  { S: 1, heads: 9, kvHeads: 3, hd: 64, causal: true },
  { S: 7, heads: 9, kvHeads: 3, hd: 64, causal: true },
  { S: 65, heads: 9, kvHeads: 3, hd: 64, causal: true },
  { S: 130, heads: 9, kvHeads: 3, hd: 64, causal: true },
  // Continuing after cached tokens, K/V read from the cache layout (capacity > keys).
  { S: 7, heads: 9, kvHeads: 3, hd: 64, causal: true, past: 37, capacity: 50 },
  { S: 65, heads: 9, kvHeads: 3, hd: 64, causal: true, past: 100, capacity: 170 },
  { S: 130, heads: 2, kvHeads: 1, hd: 72, causal: true, past: 3 },
  // SigLIP: 12/12, bidirectional, d64; d72 variants.
  { S: 130, heads: 12, kvHeads: 12, hd: 64, causal: false },
  { S: 65, heads: 12, kvHeads: 12, hd: 72, causal: false },
  { S: 7, heads: 2, kvHeads: 1, hd: 72, causal: false },
  { S: 65, heads: 2, kvHeads: 1, hd: 72, causal: true },
  // Key padding, batches, more keys than queries.
  { S: 65, heads: 12, kvHeads: 12, hd: 64, causal: false, kvLen: 40 },
  { S: 33, heads: 12, kvHeads: 12, hd: 64, causal: false, batch: 3, kvLen: 20 },
  { S: 65, heads: 9, kvHeads: 3, hd: 64, causal: true, kvLen: 50 },
  { S: 7, heads: 4, kvHeads: 2, hd: 64, causal: false, keys: 77 },
  { S: 9, heads: 4, kvHeads: 4, hd: 64, causal: false, kvLen: 0 },
  // d128 (the largest), MQA with more heads per KV head than one tile packs (64).
  // (Each head dim is a pipeline; SwiftShader takes seconds to compile one, so few dims here.)
  { S: 20, heads: 4, kvHeads: 2, hd: 128, causal: false },
  { S: 30, heads: 6, kvHeads: 2, hd: 128, causal: true, past: 9 },
  { S: 3, heads: 72, kvHeads: 1, hd: 64, causal: true },
  // A fused QKV projection output read in place.
  { S: 65, heads: 9, kvHeads: 3, hd: 64, causal: true, fused: true },
  { S: 33, heads: 12, kvHeads: 12, hd: 72, causal: false, fused: true },
];

/** Every shape on every variant: 'tile' and 'rows-shared' (GPUs), 'tile-lowmem' (CPU adapters), 'rows'. */
const specs: Spec[] = (['tile', 'tile-lowmem', 'rows', 'rows-shared'] as const).flatMap((variant) => shapes.map((s) => ({ ...s, variant })));

export const cases = defineCases([
  ...specs.map((s, i) => ({
    name: describe(s),
    node: i % shapes.length === 3 || i % shapes.length === 8,
    run: (c: CaseContext) => checkPrefill(c, s, 1000 + 17 * (i % shapes.length)),
  })),
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const big = gpu.allocator.create(1 << 16), small = gpu.allocator.create(64), out = gpu.allocator.create(1 << 16);
      const rec = gpu.recorder();
      const ok = { q: big, k: big, v: big, out, seqLen: 4, heads: 4, kvHeads: 2, headDim: 64, causal: true };
      await expectReject('head dim 66', () => attentionPrefill(gpu, rec, { ...ok, headDim: 66 }), 'UnsupportedFeature');
      await expectReject('head dim 256', () => attentionPrefill(gpu, rec, { ...ok, headDim: 256 }), 'UnsupportedFeature');
      await expectReject('9 heads / 2 kv', () => attentionPrefill(gpu, rec, { ...ok, heads: 9, kvHeads: 2 }), 'ShapeMismatch');
      await expectReject('short q', () => attentionPrefill(gpu, rec, { ...ok, q: small }), 'BufferTooSmall');
      await expectReject('short v', () => attentionPrefill(gpu, rec, { ...ok, v: small }), 'BufferTooSmall');
      await expectReject('short out', () => attentionPrefill(gpu, rec, { ...ok, out: small }), 'BufferTooSmall');
      await expectReject('seqLen 0', () => attentionPrefill(gpu, rec, { ...ok, seqLen: 0 }), 'ShapeMismatch');
      await expectReject('kvLen > keys', () => attentionPrefill(gpu, rec, { ...ok, kvLen: 5 }), 'ShapeMismatch');
      await expectReject('causal past beyond keys', () => attentionPrefill(gpu, rec, { ...ok, past: 3, keys: 6 }), 'ShapeMismatch');
      await expectReject('past beyond cache', () => attentionPrefill(gpu, rec, { ...ok, past: 30, kvLayout: { kind: 'cache', capacity: 32 } }), 'ContextOverflow');
      await expectReject('odd offset', () => attentionPrefill(gpu, rec, { ...ok, kOffset: 2 }), 'InvalidArgument');
      await expectReject('out aliases q', () => attentionPrefill(gpu, rec, { ...ok, out: big }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
      for (const b of [big, small, out]) gpu.allocator.destroy(b);
    },
  },
]);
