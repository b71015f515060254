/**
 * argmax and sample vs CPU implementations of the same rules: argmax exact (ties, NaN, ±0, −inf, penalty),
 * sample against the same inverse-CDF rule over a grid of u values, top_k = 1 = argmax, ties at the k-th
 * value, the seen-mask update, bad arguments.
 */
import { argmax, buildSeenMask, sample, SAMPLE_MAX_K, SAMPLE_NONE, seenMaskWords } from '../../src/kernels/sampling.ts';
import { upload, readU32 } from '../../src/gpu/io.ts';
import { expectReject, randomF32, rng } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

const f = Math.fround;

interface Rule {
  penalty?: number;
  seen?: Set<number>;
  temperature?: number;
  topK?: number;
  topP?: number;
}

/** The processed score as the kernel computes it in f32: penalty, then temperature. */
function processed(logit: number, v: number, r: Rule, temperature: boolean): number {
  let s = logit;
  if (r.penalty !== undefined && r.penalty !== 1 && r.seen?.has(v)) s = s < 0 ? f(s * f(r.penalty)) : f(s / f(r.penalty));
  if (temperature) s = f(s / f(r.temperature ?? 1));
  return s;
}

/** Descending by value, then ascending index; NaN excluded; −0 equals +0 (JS comparison). */
function ranked(s: Float64Array | number[]): number[] {
  const idx: number[] = [];
  for (let v = 0; v < s.length; v++) if (!Number.isNaN(s[v])) idx.push(v);
  return idx.sort((a, b) => (s[a] === s[b] ? a - b : s[b] - s[a]));
}

export function argmaxRef(logits: ArrayLike<number>, r: Rule = {}): number {
  const s = Array.from(logits, (x, v) => processed(x, v, r, false));
  return ranked(s)[0] ?? SAMPLE_NONE;
}

/** The sampling rule of src/kernels/sampling.ts, in f64 on the f32 processed scores: ranks once, then picks per (u, top_p). */
export function sampleRule(logits: ArrayLike<number>, r: Rule): (u: number, topP?: number) => number {
  const s = Float64Array.from(logits, (x, v) => processed(x, v, r, true));
  const order = ranked(s);
  if (!order.length) return () => SAMPLE_NONE;
  const topK = r.topK ?? 0;
  const cand = order.slice(0, topK > 0 ? Math.min(topK, SAMPLE_MAX_K) : SAMPLE_MAX_K);
  const smax = s[cand[0]];
  const p = cand.map((v) => Math.exp(s[v] - smax));
  const z = topK > 0 ? p.reduce((a, b) => a + b, 0) : order.reduce((a, v) => a + Math.exp(s[v] - smax), 0);
  return (u, topP = r.topP ?? 1) => {
    let kept = 1, mass = p[0];
    for (let j = 1; j < cand.length; j++) {
      if (topP < 1 && mass / z >= topP) break;
      mass += p[j];
      kept++;
    }
    const target = f(u) * mass;
    let c = 0;
    for (let j = 0; j < kept; j++) {
      c += p[j];
      if (c > target) return cand[j];
    }
    return cand[kept - 1];
  };
}

/** Tokens the rule gives when u and top_p move by ±1e-5 (f32 probabilities on the GPU vs f64 here). */
function acceptable(rule: (u: number, topP?: number) => number, topP: number, u: number): Set<number> {
  const out = new Set<number>();
  const d = 1e-5;
  for (const du of [-d, 0, d]) for (const dp of [-d, 0, d]) out.add(rule(Math.min(Math.max(u + du, 0), 1 - 1e-9), Math.min(1, topP + dp)));
  return out;
}

async function runArgmax(gpu: CaseContext['gpu'], logits: Float32Array, V: number, rows: number, r: Rule & { mark?: boolean; strict?: boolean } = {}) {
  const lb = upload(gpu, logits), out = gpu.allocator.create(rows * 4);
  const seenIds = r.seen ? [...r.seen] : [];
  const sb = r.seen || r.mark ? upload(gpu, buildSeenMask(Array.from({ length: rows }, () => seenIds), V, rows)) : undefined;
  const rec = gpu.recorder();
  argmax(gpu, rec, { logits: lb, out, V, rows, penalty: r.penalty, seen: sb, markSeen: r.mark, strict: r.strict });
  rec.submit();
  const got = await readU32(gpu, out, rows);
  const mask = sb ? await readU32(gpu, sb, rows * seenMaskWords(V)) : null;
  for (const b of [lb, out, sb]) if (b) gpu.allocator.destroy(b);
  return { got, mask };
}

async function runSample(gpu: CaseContext['gpu'], logits: Float32Array, V: number, rows: number, r: Rule, u: number[], mark = false) {
  const lb = upload(gpu, logits), out = gpu.allocator.create(rows * 4);
  const seenIds = r.seen ? [...r.seen] : [];
  const sb = r.seen || mark ? upload(gpu, buildSeenMask(Array.from({ length: rows }, () => seenIds), V, rows)) : undefined;
  const rec = gpu.recorder();
  sample(gpu, rec, { logits: lb, out, V, rows, penalty: r.penalty, seen: sb, markSeen: mark, temperature: r.temperature ?? 1, topK: r.topK ?? 0, topP: r.topP ?? 1, u });
  rec.submit();
  const got = await readU32(gpu, out, rows);
  const mask = sb ? await readU32(gpu, sb, rows * seenMaskWords(V)) : null;
  for (const b of [lb, out, sb]) if (b) gpu.allocator.destroy(b);
  return { got, mask };
}

function expectEq(what: string, got: number, want: number) {
  if (got !== want) throw new Error(`${what}: got ${got}, expected ${want}`);
}

/** One row's logits replicated over `rows` rows. */
const replicate = (row: Float32Array, rows: number) => {
  const out = new Float32Array(row.length * rows);
  for (let r = 0; r < rows; r++) out.set(row, r * row.length);
  return out;
};

/** Compares the GPU against the rule for 4·batches values of u spread over [0, 1) (4 rows per dispatch: SwiftShader runs barrier-heavy workgroups slowly). */
async function sweep({ gpu, log }: CaseContext, what: string, row: Float32Array, r: Rule, batches: number, seed: number) {
  const V = row.length, rows = 4, rand = rng(seed);
  let ambiguous = 0;
  const picked = new Map<number, number>();
  const rule = sampleRule(row, r);
  for (let b = 0; b < batches; b++) {
    const u = Array.from({ length: rows }, (_, i) => f((b * rows + i + rand()) / (rows * batches)));
    const { got } = await runSample(gpu, replicate(row, rows), V, rows, r, u);
    for (let i = 0; i < rows; i++) {
      const ok = acceptable(rule, r.topP ?? 1, u[i]);
      if (ok.size > 1) ambiguous++;
      if (!ok.has(got[i])) throw new Error(`${what}: u=${u[i]} gave ${got[i]}, the rule gives ${[...ok].join(' or ')}`);
      picked.set(got[i], (picked.get(got[i]) ?? 0) + 1);
    }
  }
  log(`${what}: ${rows * batches} draws match the inverse-CDF rule (${ambiguous} within 1e-5 of a step), ${picked.size} distinct tokens`);
}

export const cases = defineCases([
  {
    name: 'argmax: ties → lowest index, NaN skipped',
    node: true,
    async run({ gpu, log }) {
      const V = 1000, x = randomF32(V, 1, 4);
      x[5] = NaN;
      x[700] = x[301] = x[300] = 4.5;
      x[999] = 4.5;
      const { got } = await runArgmax(gpu, x, V, 1);
      expectEq('argmax ties', got[0], 300);
      log('argmax V=1000 with 4 tied maxima and a NaN: 300 (lowest tied index)');
    },
  },
  {
    name: 'argmax: 2 rows of a 49280 vocabulary',
    async run({ gpu, log }) {
      const V = 49280, x = randomF32(2 * V, 2, 10);
      x[2 * V - 1] = 11; // row 1's maximum is its last token
      const { got } = await runArgmax(gpu, x, V, 2);
      expectEq('row 0', got[0], argmaxRef(x.subarray(0, V)));
      expectEq('row 1', got[1], V - 1);
      log(`argmax 2x${V}: ${got[0]}, ${got[1]} (exact)`);
    },
  },
  {
    name: 'argmax strict: one NaN or +inf anywhere in a row → NONE; −inf and finite rows as usual',
    async run({ gpu, log }) {
      const V = 1037, rows = 4;
      const x = randomF32(rows * V, 71, 4);
      x[0 * V + 5] = NaN; // row 0: a NaN among finite values
      x[1 * V + V - 1] = Infinity; // row 1: +inf at the last index
      x[2 * V + 9] = -Infinity; // row 2: −inf only (a masked logit, not an error)
      const { got } = await runArgmax(gpu, x, V, rows, { strict: true });
      expectEq('row 0 (NaN)', got[0], SAMPLE_NONE);
      expectEq('row 1 (+inf)', got[1], SAMPLE_NONE);
      expectEq('row 2 (−inf)', got[2], argmaxRef(x.subarray(2 * V, 3 * V)));
      expectEq('row 3 (finite)', got[3], argmaxRef(x.subarray(3 * V, 4 * V)));
      const lax = await runArgmax(gpu, x, V, rows);
      expectEq('not strict: NaN skipped', lax.got[0], argmaxRef(x.subarray(0, V)));
      expectEq('not strict: +inf wins', lax.got[1], V - 1);
      log(`strict: NaN row → NONE, +inf row → NONE, −inf row → ${got[2]}, finite → ${got[3]}; not strict: ${lax.got[0]}, ${lax.got[1]}`);
    },
  },
  {
    name: 'argmax: all NaN → NONE, all −inf → 0, −0 ties +0, V=1',
    async run({ gpu, log }) {
      const nan = new Float32Array(300).fill(NaN);
      expectEq('all NaN', (await runArgmax(gpu, nan, 300, 1)).got[0], SAMPLE_NONE);
      const ninf = new Float32Array(300).fill(-Infinity);
      expectEq('all -inf', (await runArgmax(gpu, ninf, 300, 1)).got[0], 0);
      const z = new Float32Array(40).fill(-1);
      z[7] = -0;
      z[3] = 0;
      expectEq('+0 at 3, -0 at 7', (await runArgmax(gpu, z, 40, 1)).got[0], 3);
      z[3] = -0;
      z[7] = 0;
      expectEq('-0 at 3, +0 at 7', (await runArgmax(gpu, z, 40, 1)).got[0], 3);
      expectEq('V=1', (await runArgmax(gpu, new Float32Array([-2]), 1, 1)).got[0], 0);
      log('all-NaN row → 0xFFFFFFFF; all −inf → 0; −0 == +0 → lower index; V=1 → 0');
    },
  },
  {
    name: 'argmax: repetition penalty and seen-mask update',
    async run({ gpu, log }) {
      const V = 517, x = randomF32(V, 3, 3);
      const order = ranked(Array.from(x));
      // Penalise the best (positive: divided) and a negative logit (multiplied), both rows.
      const neg = order[order.length - 1];
      const seen = new Set([order[0], neg, 516]);
      const r = { penalty: 1.3, seen };
      const { got, mask } = await runArgmax(gpu, replicate(x, 2), V, 2, { ...r, mark: true });
      const want = argmaxRef(x, r);
      if (want === order[0]) throw new Error('test setup: the penalty should change the winner');
      expectEq('penalised row 0', got[0], want);
      expectEq('penalised row 1', got[1], want);
      const words = seenMaskWords(V);
      for (let row = 0; row < 2; row++) {
        const m = mask!.subarray(row * words, (row + 1) * words);
        const expected = buildSeenMask([...seen, want], V);
        for (let i = 0; i < words; i++) if (m[i] !== expected[i]) throw new Error(`row ${row} mask word ${i}: ${m[i]} != ${expected[i]}`);
      }
      log(`argmax with penalty 1.3: ${want} (unpenalised winner ${order[0]}); mask gained bit ${want} in both rows`);
    },
  },
  {
    name: 'sample: top_k = 1 equals argmax (penalty, temperature)',
    node: true,
    async run({ gpu, log }) {
      const V = 3001, rows = 4, x = randomF32(V * rows, 4, 5);
      const seen = new Set([1, 2, 3, 100, 2000, 3000]);
      const u = Array.from({ length: rows }, (_, i) => (i + 0.5) / rows);
      const r = { penalty: 1.2, seen, temperature: 0.7, topK: 1, topP: 0.9 };
      const s = await runSample(gpu, x, V, rows, r, u);
      const a = await runArgmax(gpu, x, V, rows, r);
      for (let i = 0; i < rows; i++) {
        expectEq(`row ${i} sample vs argmax`, s.got[i], a.got[i]);
        expectEq(`row ${i} argmax vs CPU`, a.got[i], argmaxRef(x.subarray(i * V, (i + 1) * V), r));
      }
      log(`${rows} rows V=${V}: sample(top_k=1) = argmax = CPU argmax`);
    },
  },
  {
    name: 'sample: top_k 50, top_p 0.9, T 0.8, penalty 1.1 (V 5000)',
    async run(c) {
      const row = randomF32(5000, 5, 6);
      await sweep(c, 'top_k 50 / top_p 0.9 / T 0.8', row, { topK: 50, topP: 0.9, temperature: 0.8, penalty: 1.1, seen: new Set([0, 17, 4999]) }, 6, 50);
    },
  },
  {
    name: 'sample: top_k off, top_p 0.95 (nucleus over the whole-vocabulary probabilities)',
    async run(c) {
      const row = randomF32(3000, 6, 12); // peaked: the nucleus fits in 256 candidates
      await sweep(c, 'top_p 0.95 / T 1', row, { topK: 0, topP: 0.95, temperature: 1 }, 6, 51);
    },
  },
  {
    name: 'sample: pure temperature (top_k off, top_p 1) — 256 best kept',
    async run(c) {
      await sweep(c, 'T 1.5 only', randomF32(700, 7, 4), { temperature: 1.5 }, 4, 52);
    },
  },
  {
    name: 'sample: V < k, and top_k > 256 capped',
    async run(c) {
      await sweep(c, 'V 10, top_k 50', randomF32(10, 8, 2), { topK: 50, temperature: 1 }, 3, 53);
      await sweep(c, 'V 400, top_k 1000 → 256', randomF32(400, 9, 2), { topK: 1000, temperature: 2 }, 3, 54);
    },
  },
  {
    name: 'sample: ties at the k-th value take the lowest indices',
    async run(c) {
      // 600 logits: 3 distinct high values, then 597 equal zeros; top_k 10 takes 7 of the zeros (indices 0..)
      const row = new Float32Array(600);
      row[500] = 3;
      row[200] = 2.5;
      row[599] = 2;
      await sweep(c, 'ties at k (7 of 597 zeros)', row, { topK: 10, temperature: 1 }, 4, 55);
      // every value equal: the first 256 indices are the candidates
      await sweep(c, 'all equal, top_k off', new Float32Array(1000).fill(0.25), { temperature: 1 }, 2, 56);
    },
  },
  {
    name: 'sample: a 49280 vocabulary, flat logits: top_p 0.9 nucleus capped at 256 candidates',
    async run(c) {
      await sweep(c, 'V 49280 top_p 0.9', randomF32(49280, 11, 14), { topP: 0.9, temperature: 0.7 }, 1, 57);
    },
  },
  {
    name: 'sample: NaN logits skipped, all-NaN → NONE, seen mask marked',
    async run({ gpu, log }) {
      const V = 300, row = randomF32(V, 10, 3);
      for (let i = 0; i < V; i += 7) row[i] = NaN;
      const u = [0.1, 0.6, 0.99];
      const r = { topK: 20, topP: 0.8, temperature: 0.9 };
      const { got, mask } = await runSample(gpu, replicate(row, 3), V, 3, r, u, true);
      const words = seenMaskWords(V);
      const rule = sampleRule(row, r);
      for (let i = 0; i < 3; i++) {
        const ok = acceptable(rule, r.topP, u[i]);
        if (!ok.has(got[i])) throw new Error(`row ${i}: got ${got[i]}, rule gives ${[...ok]}`);
        if (got[i] % 7 === 0) throw new Error(`row ${i}: picked a NaN logit`);
        const m = mask!.subarray(i * words, (i + 1) * words);
        if (!((m[got[i] >>> 5] >>> (got[i] & 31)) & 1)) throw new Error(`row ${i}: token ${got[i]} not marked`);
        if (m.reduce((a, w) => a + (w.toString(2).split('1').length - 1), 0) !== 1) throw new Error(`row ${i}: more than one bit set`);
      }
      const allNan = await runSample(gpu, new Float32Array(V).fill(NaN), V, 1, r, [0.5]);
      expectEq('all NaN', allNan.got[0], SAMPLE_NONE);
      log(`NaN-laced rows sample valid tokens ${[...got].join(', ')}; all-NaN → NONE; chosen tokens marked`);
    },
  },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const l = gpu.allocator.create(4096), o = gpu.allocator.create(256), s = gpu.allocator.create(64);
      const rec = gpu.recorder();
      const base = { logits: l, out: o, V: 100, temperature: 1, topK: 0, topP: 1, u: 0.5 };
      await expectReject('V=0', () => argmax(gpu, rec, { logits: l, out: o, V: 0 }), 'ShapeMismatch');
      await expectReject('short logits', () => argmax(gpu, rec, { logits: l, out: o, V: 2000 }), 'BufferTooSmall');
      await expectReject('penalty without seen', () => argmax(gpu, rec, { logits: l, out: o, V: 100, penalty: 1.2 }), 'InvalidArgument');
      await expectReject('penalty 0', () => argmax(gpu, rec, { logits: l, out: o, V: 100, penalty: 0, seen: s }), 'InvalidArgument');
      await expectReject('short seen', () => argmax(gpu, rec, { logits: l, out: o, V: 1000, penalty: 1.2, seen: gpu.allocator.create(4) }), 'BufferTooSmall');
      await expectReject('out = logits', () => argmax(gpu, rec, { logits: l, out: l, V: 100 }), 'InvalidArgument');
      await expectReject('temperature 0', () => sample(gpu, rec, { ...base, temperature: 0 }), 'InvalidArgument');
      await expectReject('topP 0', () => sample(gpu, rec, { ...base, topP: 0 }), 'InvalidArgument');
      await expectReject('topP 1.5', () => sample(gpu, rec, { ...base, topP: 1.5 }), 'InvalidArgument');
      await expectReject('topK -1', () => sample(gpu, rec, { ...base, topK: -1 }), 'InvalidArgument');
      await expectReject('u = 1', () => sample(gpu, rec, { ...base, u: 1 }), 'InvalidArgument');
      await expectReject('u count', () => sample(gpu, rec, { ...base, rows: 2, u: [0.1] }), 'InvalidArgument');
      await expectReject('rows 17', () => sample(gpu, rec, { ...base, V: 10, rows: 17, u: new Array(17).fill(0) }), 'ShapeMismatch');
      await expectReject('markSeen without seen', () => sample(gpu, rec, { ...base, markSeen: true }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      for (const b of [l, o, s]) gpu.allocator.destroy(b);
    },
  },
]);
