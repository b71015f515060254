/** Embedding gather from f32, f16 and int4 tables vs CPU lookups: exact, incl. odd D, repeated and out-of-range ids. */
import { embedding } from '../../src/kernels/embedding.ts';
import { f16BitsToNumber, f32ToF16Bits } from '../../src/kernels/dtype.ts';
import { dequantizeInt4, quantizeInt4, uploadInt4, type Int4Group, type Int4ScaleType } from '../../src/kernels/int4.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, randomF32, rng } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

/** Token ids in [0, V), with a repeat and (when `oob`) ids ≥ V, which must give zero rows. */
function makeIds(T: number, V: number, seed: number, oob: boolean): Uint32Array {
  const r = rng(seed);
  const ids = new Uint32Array(T);
  for (let t = 0; t < T; t++) ids[t] = Math.floor(r() * V);
  if (T > 2) ids[1] = ids[0];
  if (T > 3) ids[T - 1] = V - 1;
  if (oob && T > 4) {
    ids[2] = V;
    ids[3] = 0xffffffff;
  }
  return ids;
}

function gatherRef(rows: (id: number) => ArrayLike<number> | null, ids: Uint32Array, D: number): Float64Array {
  const out = new Float64Array(ids.length * D);
  ids.forEach((id, t) => {
    const r = rows(id);
    if (r) for (let d = 0; d < D; d++) out[t * D + d] = r[d];
  });
  return out;
}

type Kind = 'f32' | 'f16' | { group: Int4Group; scaleType: Int4ScaleType };

async function check({ gpu, log }: CaseContext, kind: Kind, T: number, V: number, D: number, seed: number) {
  const w = randomF32(V * D, seed, 0.1);
  const ids = makeIds(T, V, seed + 1, true);
  const idsb = upload(gpu, ids);
  const out = gpu.allocator.create(T * D * 4);
  const rec = gpu.recorder();
  const bufs: GPUBuffer[] = [idsb, out];
  let ref: Float64Array;
  let what: string;
  if (kind === 'f32') {
    const tb = upload(gpu, w);
    bufs.push(tb);
    embedding(gpu, rec, { ids: idsb, table: { dtype: 'f32', data: tb, V, D }, out, T });
    ref = gatherRef((id) => (id < V ? w.subarray(id * D, (id + 1) * D) : null), ids, D);
    what = 'f32';
  } else if (kind === 'f16') {
    const words = new Uint32Array(Math.ceil((V * D) / 2));
    const vals = new Float64Array(V * D);
    for (let e = 0; e < V * D; e++) {
      const h = f32ToF16Bits(w[e]);
      words[e >> 1] |= h << (16 * (e & 1));
      vals[e] = f16BitsToNumber(h);
    }
    const tb = upload(gpu, words);
    bufs.push(tb);
    embedding(gpu, rec, { ids: idsb, table: { dtype: 'f16', data: tb, V, D }, out, T });
    ref = gatherRef((id) => (id < V ? vals.subarray(id * D, (id + 1) * D) : null), ids, D);
    what = 'f16';
  } else {
    const m = quantizeInt4(w, V, D, { group: kind.group, scaleType: kind.scaleType });
    const gw = uploadInt4(gpu, m);
    bufs.push(gw.packed as GPUBuffer, gw.scales as GPUBuffer);
    embedding(gpu, rec, { ids: idsb, table: { dtype: 'int4', weights: gw }, out, T });
    const deq = dequantizeInt4(m);
    ref = gatherRef((id) => (id < V ? deq.subarray(id * D, (id + 1) * D) : null), ids, D);
    what = `int4 g${kind.group} ${kind.scaleType} scales`;
  }
  rec.submit();
  const got = await readF32(gpu, out, T * D);
  assertClose(`embedding ${what} T=${T} V=${V} D=${D}`, got, ref, { atol: 0, rtol: 0 }); // a gather: bit-exact
  log(`embedding ${what} T=${T} V=${V} D=${D} (ids ≥ V → zero rows): exact`);
  for (const b of bufs) gpu.allocator.destroy(b);
}

export const cases = defineCases([
  { name: 'f32 T1 V1 D1', run: (c) => check(c, 'f32', 1, 1, 1, 1) },
  { name: 'f32 T9 V50 D37', run: (c) => check(c, 'f32', 9, 50, 37, 2) },
  { name: 'f16 T9 V50 D37 (odd D: rows straddle words)', node: true, run: (c) => check(c, 'f16', 9, 50, 37, 3) },
  { name: 'f16 T6 V300 D64', run: (c) => check(c, 'f16', 6, 300, 64, 4) },
  { name: 'int4 g32 f16 scales T7 V40 D96', run: (c) => check(c, { group: 32, scaleType: 'f16' }, 7, 40, 96, 5) },
  { name: 'int4 g64 f32 scales T5 V33 D100 (padded tail)', node: true, run: (c) => check(c, { group: 64, scaleType: 'f32' }, 5, 33, 100, 6) },
  { name: 'int4 g128 f16 scales T8 V20 D300 (odd group count)', run: (c) => check(c, { group: 128, scaleType: 'f16' }, 8, 20, 300, 7) },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(64), o = gpu.allocator.create(256);
      const rec = gpu.recorder();
      await expectReject('T=0', () => embedding(gpu, rec, { ids: b, table: { dtype: 'f32', data: b, V: 2, D: 2 }, out: o, T: 0 }), 'ShapeMismatch');
      await expectReject('short f32 table', () => embedding(gpu, rec, { ids: b, table: { dtype: 'f32', data: b, V: 5, D: 4 }, out: o, T: 1 }), 'BufferTooSmall');
      await expectReject('short f16 table', () => embedding(gpu, rec, { ids: b, table: { dtype: 'f16', data: b, V: 9, D: 4 }, out: o, T: 1 }), 'BufferTooSmall');
      await expectReject('short ids', () => embedding(gpu, rec, { ids: b, table: { dtype: 'f32', data: o, V: 4, D: 4 }, out: o, T: 17 }), 'BufferTooSmall');
      await expectReject('bad dtype', () => embedding(gpu, rec, { ids: b, table: { dtype: 'bf16', data: b, V: 1, D: 1 } as never, out: o, T: 1 }), 'InvalidArgument');
      await expectReject('bad int4 group', () => embedding(gpu, rec, { ids: b, table: { dtype: 'int4', weights: { N: 1, K: 32, group: 16 as never, scaleType: 'f32', packed: b, scales: b } }, out: o, T: 1 }), 'InvalidArgument');
      await expectReject('short int4 packed', () => embedding(gpu, rec, { ids: b, table: { dtype: 'int4', weights: { N: 4, K: 64, group: 32, scaleType: 'f32', packed: b, scales: o } }, out: o, T: 1 }), 'BufferTooSmall');
      await expectReject('out = table', () => embedding(gpu, rec, { ids: b, table: { dtype: 'f32', data: o, V: 1, D: 4 }, out: o, T: 1 }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(o);
    },
  },
]);
