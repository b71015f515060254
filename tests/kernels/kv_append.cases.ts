/** kv_append: new K/V rows land at [head, pos + t, :] of the cache, nothing else changes (exact copy). */
import { kvAppend, checkKvCacheShape } from '../../src/kernels/kv_cache.ts';
import { KvCache } from '../../src/models/llama.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

interface Spec {
  n: number;
  pos: number;
  kvHeads: number;
  hd: number;
  capacity: number;
  /** Source rows wider than kvHeads·hd, K and V at offsets (a fused QKV output). */
  fused?: boolean;
}

async function check({ gpu, log }: CaseContext, s: Spec, seed: number): Promise<void> {
  const kw = s.kvHeads * s.hd;
  const stride = s.fused ? 3 * kw + 8 : kw, kOff = s.fused ? kw + 4 : 0, vOff = s.fused ? 2 * kw + 8 : 0;
  const src = randomF32(s.n * stride + 2 * kw + 8, seed);
  const before = randomF32(s.kvHeads * s.capacity * s.hd, seed + 1);
  const kc = upload(gpu, before), vc = upload(gpu, before), sb = upload(gpu, src);
  const rec = gpu.recorder();
  kvAppend(gpu, rec, { kNew: sb, vNew: sb, kCache: kc, vCache: vc, n: s.n, pos: s.pos, kvHeads: s.kvHeads, headDim: s.hd, capacity: s.capacity, srcStride: stride, kOffset: kOff, vOffset: vOff });
  rec.submit();
  for (const [name, buf, off] of [['K', kc, kOff], ['V', vc, vOff]] as const) {
    const want = before.slice();
    for (let t = 0; t < s.n; t++)
      for (let h = 0; h < s.kvHeads; h++)
        for (let d = 0; d < s.hd; d++) want[(h * s.capacity + s.pos + t) * s.hd + d] = src[off + t * stride + h * s.hd + d];
    // A copy: bit-exact.
    assertClose(`kv_append ${name}`, await readF32(gpu, buf, want.length), want, { atol: 0, rtol: 0 });
  }
  log(`kv_append n${s.n} @${s.pos} h${s.kvHeads} d${s.hd} cap${s.capacity}${s.fused ? ' fused source' : ''}: exact`);
  rec.destroy();
  for (const b of [kc, vc, sb]) gpu.allocator.destroy(b);
}

const specs: Spec[] = [
  { n: 1, pos: 0, kvHeads: 3, hd: 64, capacity: 8 },
  { n: 1, pos: 7, kvHeads: 3, hd: 64, capacity: 8 },
  { n: 7, pos: 5, kvHeads: 3, hd: 72, capacity: 20, fused: true },
  { n: 130, pos: 0, kvHeads: 12, hd: 64, capacity: 130 },
];

export const cases = defineCases([
  ...specs.map((s, i) => ({ name: `n${s.n} pos${s.pos} h${s.kvHeads} d${s.hd} cap${s.capacity}${s.fused ? ' fused' : ''}`, node: i === 2, run: (c: CaseContext) => check(c, s, 300 + i) })),
  {
    name: 'KvCache (the one cache, models/llama.ts): layout [kvHeads, capacity, hd] per layer, kvAppend at its length, binding limit checked',
    async run({ gpu }) {
      const cfg = { numHiddenLayers: 2, numKeyValueHeads: 2, headDim: 8 } as ConstructorParameters<typeof KvCache>[1];
      const cache = new KvCache(gpu, cfg, 4);
      cache.length = 3;
      const src = randomF32(16, 5);
      const sb = upload(gpu, src);
      const rec = gpu.recorder();
      kvAppend(gpu, rec, { kNew: sb, vNew: sb, kCache: cache.k[1], vCache: cache.v[1], n: 1, pos: cache.length, kvHeads: 2, headDim: 8, capacity: cache.capacity });
      rec.submit();
      const got = await readF32(gpu, cache.v[1], 2 * 4 * 8);
      const want = new Float32Array(64);
      for (let h = 0; h < 2; h++) for (let d = 0; d < 8; d++) want[(h * 4 + 3) * 8 + d] = src[h * 8 + d];
      assertClose('kvAppend into KvCache', got, want, { atol: 0, rtol: 0 });
      await expectReject('overflow', () => kvAppend(gpu, rec, { kNew: sb, vNew: sb, kCache: cache.k[0], vCache: cache.v[0], n: 1, pos: 4, kvHeads: 2, headDim: 8, capacity: 4 }), 'ContextOverflow');
      const huge = Math.floor(gpu.caps.limits.maxStorageBufferBindingSize / (2 * 8 * 4)) + 1;
      await expectReject('over the binding limit', async () => checkKvCacheShape(gpu, { layers: 1, kvHeads: 2, headDim: 8, capacity: huge }), 'ContextOverflow');
      rec.destroy();
      gpu.allocator.destroy(sb);
      cache.destroy(gpu);
    },
  },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const big = gpu.allocator.create(1 << 16), small = gpu.allocator.create(64), kc = gpu.allocator.create(1 << 16), vc = gpu.allocator.create(1 << 16);
      const rec = gpu.recorder();
      const ok = { kNew: big, vNew: big, kCache: kc, vCache: vc, n: 2, pos: 0, kvHeads: 3, headDim: 64, capacity: 16 };
      await expectReject('overflow', () => kvAppend(gpu, rec, { ...ok, pos: 15 }), 'ContextOverflow');
      await expectReject('head dim 6', () => kvAppend(gpu, rec, { ...ok, headDim: 6 }), 'UnsupportedFeature');
      await expectReject('short source', () => kvAppend(gpu, rec, { ...ok, kNew: small }), 'BufferTooSmall');
      await expectReject('short cache', () => kvAppend(gpu, rec, { ...ok, vCache: small }), 'BufferTooSmall');
      await expectReject('cache aliases source', () => kvAppend(gpu, rec, { ...ok, kCache: big }), 'InvalidArgument');
      await expectReject('K and V cache alias', () => kvAppend(gpu, rec, { ...ok, vCache: kc }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
      for (const b of [big, small, kc, vc]) gpu.allocator.destroy(b);
    },
  },
]);
