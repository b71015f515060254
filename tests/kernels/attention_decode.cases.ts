/**
 * Flash-decoding vs the f64 reference: contexts 1, 33, 300, 1000 with the default split and forced
 * split sizes (one key in the last split, many splits), 1–4 new tokens (causal among themselves),
 * SmolVLM's 9/3 heads, 12/12, 2/1, MQA wider than one workgroup's packing, head dims 64, 72, 128,
 * K/V from the cache layout (capacity > context) and the tokens layout; and a whole text step:
 * kv_append → prefill from the cache → kv_append → decode.
 */
import { attentionDecode, attentionDecodeScratchBytes, decodePlan, type DecodeVariant } from '../../src/kernels/attention_decode.ts';
import { attentionPrefill } from '../../src/kernels/attention_prefill.ts';
import { kvAppend } from '../../src/kernels/kv_cache.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';
import { attentionRef, toCacheLayout } from './attention_ref.ts';

interface Spec {
  ctx: number;
  nq: number;
  heads: number;
  kvHeads: number;
  hd: number;
  split?: number;
  /** Read K/V in the tokens layout instead of the cache. */
  tokensLayout?: boolean;
  variant: DecodeVariant;
}

/** Same reasoning as the prefill tolerance; the merge adds one more exp2-weighted sum of f32 partials. */
const TOL = { atol: 2e-5, rtol: 1e-4 };

async function checkDecode({ gpu, log }: CaseContext, s: Spec, seed: number): Promise<void> {
  const qw = s.heads * s.hd, kw = s.kvHeads * s.hd, capacity = s.ctx + 13;
  const q = randomF32(s.nq * qw, seed, 2), k = randomF32(s.ctx * kw, seed + 1), v = randomF32(s.ctx * kw, seed + 2);
  const ref = attentionRef({ q, k, v, seqLen: s.nq, heads: s.heads, kvHeads: s.kvHeads, headDim: s.hd, causal: true, past: s.ctx - s.nq, keys: s.ctx });
  const shape = { tokens: s.nq, kvLen: s.ctx, heads: s.heads, kvHeads: s.kvHeads, headDim: s.hd, splitSize: s.split, variant: s.variant };
  const plan = decodePlan(gpu, shape);
  const qb = upload(gpu, q);
  const kb = upload(gpu, s.tokensLayout ? k : toCacheLayout(k, s.ctx, s.kvHeads, s.hd, capacity));
  const vb = upload(gpu, s.tokensLayout ? v : toCacheLayout(v, s.ctx, s.kvHeads, s.hd, capacity));
  const out = gpu.allocator.create(s.nq * qw * 4);
  const scratchBytes = attentionDecodeScratchBytes(gpu, shape);
  const scratch = scratchBytes ? gpu.allocator.create(scratchBytes) : undefined;
  const rec = gpu.recorder();
  attentionDecode(gpu, rec, {
    ...shape, q: qb, k: kb, v: vb, out, scratch,
    kvLayout: s.tokensLayout ? { kind: 'tokens' } : { kind: 'cache', capacity },
  });
  const dispatches = rec.dispatchCount;
  rec.submit();
  const got = await readF32(gpu, out, s.nq * qw);
  const what = `decode ${describe(s)} (split ${plan.splitSize}×${plan.nSplits}, ${dispatches} dispatch${dispatches > 1 ? 'es' : ''})`;
  const st = assertClose(what, got, ref, TOL);
  log(`${what}: ${fmtStats(st)}`);
  rec.destroy();
  for (const b of [qb, kb, vb, out, scratch]) if (b) gpu.allocator.destroy(b);
}

function describe(s: Spec): string {
  return `${s.variant} ctx${s.ctx} nq${s.nq} h${s.heads}/${s.kvHeads} d${s.hd}${s.split ? ` split${s.split}` : ''}${s.tokensLayout ? ' tokens-layout' : ''}`;
}

const shapes: Array<Omit<Spec, 'variant'>> = [
  { ctx: 1, nq: 1, heads: 9, kvHeads: 3, hd: 64 },
  { ctx: 33, nq: 1, heads: 9, kvHeads: 3, hd: 64 },
  { ctx: 33, nq: 1, heads: 9, kvHeads: 3, hd: 64, split: 32 },
  { ctx: 300, nq: 1, heads: 9, kvHeads: 3, hd: 64 },
  { ctx: 300, nq: 1, heads: 9, kvHeads: 3, hd: 64, split: 256 },
  { ctx: 1000, nq: 1, heads: 9, kvHeads: 3, hd: 64 },
  { ctx: 1000, nq: 1, heads: 9, kvHeads: 3, hd: 64, split: 512 },
  { ctx: 33, nq: 4, heads: 9, kvHeads: 3, hd: 64 },
  { ctx: 1000, nq: 4, heads: 9, kvHeads: 3, hd: 64, split: 96 },
  { ctx: 300, nq: 2, heads: 2, kvHeads: 1, hd: 72, split: 64 },
  { ctx: 1000, nq: 2, heads: 2, kvHeads: 1, hd: 72 },
  // (9/3 again: every distinct tile shape is one more pipeline, seconds of SwiftShader compile.)
  { ctx: 300, nq: 1, heads: 9, kvHeads: 3, hd: 64, split: 128, tokensLayout: true },
  { ctx: 70, nq: 3, heads: 9, kvHeads: 1, hd: 64, split: 32 },
  { ctx: 100, nq: 3, heads: 4, kvHeads: 2, hd: 128, split: 64 },
];
// Every shape on the GPU variant ('tile'); the CPU-adapter variant ('rows') on every other shape and
// on the SmolVLM 9/3 ones (each variant × tile shape is a pipeline: seconds of SwiftShader compile).
const specs: Spec[] = [
  ...shapes.map((s) => ({ ...s, variant: 'tile' as const })),
  ...shapes.filter((s, i) => i % 2 === 1 || (s.heads === 9 && s.kvHeads === 3 && s.nq === 1)).map((s) => ({ ...s, variant: 'rows' as const })),
];

/** A text-model step on the cache: prompt of P tokens (append + causal prefill), then one decode token. */
async function checkTextStep({ gpu, log }: CaseContext): Promise<void> {
  const P = 70, heads = 9, kvHeads = 3, hd = 64, capacity = 96, T = P + 1;
  const qw = heads * hd, kw = kvHeads * hd;
  const q = randomF32(T * qw, 71, 2), k = randomF32(T * kw, 72), v = randomF32(T * kw, 73);
  const ref = attentionRef({ q, k, v, seqLen: T, heads, kvHeads, headDim: hd, causal: true });
  const kc = gpu.allocator.create(kvHeads * capacity * hd * 4), vc = gpu.allocator.create(kvHeads * capacity * hd * 4);
  const qb = upload(gpu, q), kb = upload(gpu, k), vb = upload(gpu, v);
  const outP = gpu.allocator.create(P * qw * 4), outD = gpu.allocator.create(qw * 4);
  const layout = { kind: 'cache' as const, capacity };
  const rec = gpu.recorder();
  // Prompt in two chunks (40 then 30 tokens), the second continuing after the cached first.
  kvAppend(gpu, rec, { kNew: kb, vNew: vb, kCache: kc, vCache: vc, n: 40, pos: 0, kvHeads, headDim: hd, capacity });
  attentionPrefill(gpu, rec, { q: qb, k: kc, v: vc, out: outP, seqLen: 40, heads, kvHeads, headDim: hd, causal: true, kvLayout: layout });
  kvAppend(gpu, rec, { kNew: kb, vNew: vb, kCache: kc, vCache: vc, n: 30, pos: 40, kvHeads, headDim: hd, capacity, kOffset: 40 * kw, vOffset: 40 * kw });
  attentionPrefill(gpu, rec, { q: { buffer: qb, offset: 40 * qw * 4 }, k: kc, v: vc, out: { buffer: outP, offset: 40 * qw * 4 }, seqLen: 30, past: 40, heads, kvHeads, headDim: hd, causal: true, kvLayout: layout });
  kvAppend(gpu, rec, { kNew: kb, vNew: vb, kCache: kc, vCache: vc, n: 1, pos: P, kvHeads, headDim: hd, capacity, kOffset: P * kw, vOffset: P * kw });
  attentionDecode(gpu, rec, { q: qb, qOffset: P * qw, k: kc, v: vc, out: outD, tokens: 1, kvLen: T, heads, kvHeads, headDim: hd, kvLayout: layout });
  rec.submit();
  const got = new Float32Array(T * qw);
  got.set(await readF32(gpu, outP, P * qw));
  got.set(await readF32(gpu, outD, qw), P * qw);
  const st = assertClose('append → prefill 40 → append → prefill 30 (past 40) → append → decode', got, ref, TOL);
  log(`text step on the KV cache (prompt 70 in two chunks + 1 decode token): ${fmtStats(st)}`);
  rec.destroy();
  for (const b of [kc, vc, qb, kb, vb, outP, outD]) gpu.allocator.destroy(b);
}

export const cases = defineCases([
  ...specs.map((s, i) => ({ name: describe(s), node: i === 8 || i === specs.length - 1, run: (c: CaseContext) => checkDecode(c, s, 2000 + 31 * i) })),
  { name: 'text step: append, chunked prefill from the cache, decode', node: true, run: checkTextStep },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const big = gpu.allocator.create(1 << 18), small = gpu.allocator.create(64), out = gpu.allocator.create(1 << 16), scratch = gpu.allocator.create(1 << 16);
      const rec = gpu.recorder();
      const ok = { q: big, k: big, v: big, out, tokens: 1, kvLen: 100, heads: 9, kvHeads: 3, headDim: 64, kvLayout: { kind: 'cache' as const, capacity: 128 } };
      await expectReject('5 tokens', () => attentionDecode(gpu, rec, { ...ok, tokens: 5 }), 'ShapeMismatch');
      await expectReject('kvLen < tokens', () => attentionDecode(gpu, rec, { ...ok, tokens: 2, kvLen: 1 }), 'ShapeMismatch');
      await expectReject('head dim 66', () => attentionDecode(gpu, rec, { ...ok, headDim: 66 }), 'UnsupportedFeature');
      await expectReject('9 heads / 2 kv', () => attentionDecode(gpu, rec, { ...ok, kvHeads: 2 }), 'ShapeMismatch');
      await expectReject('split 48', () => attentionDecode(gpu, rec, { ...ok, splitSize: 48, scratch }), 'InvalidArgument');
      await expectReject('no scratch', () => attentionDecode(gpu, rec, { ...ok, splitSize: 32 }), 'InvalidArgument');
      await expectReject('short scratch', () => attentionDecode(gpu, rec, { ...ok, splitSize: 32, scratch: small }), 'BufferTooSmall');
      await expectReject('short k', () => attentionDecode(gpu, rec, { ...ok, k: small }), 'BufferTooSmall');
      await expectReject('short out', () => attentionDecode(gpu, rec, { ...ok, out: small }), 'BufferTooSmall');
      await expectReject('context beyond cache', () => attentionDecode(gpu, rec, { ...ok, kvLen: 129 }), 'ContextOverflow');
      await expectReject('out aliases k', () => attentionDecode(gpu, rec, { ...ok, out: big }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
      for (const b of [big, small, out, scratch]) gpu.allocator.destroy(b);
    },
  },
]);
