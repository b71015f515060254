/** RoPE vs an f64 reference of HF's rule (f32 inv_freq and f32 angle, exact cos/sin), incl. fused QKV layout. */
import { rope, ropeInvFreq } from '../../src/kernels/rope.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

/** Rotates, in f64, the `heads` heads of rows [off + s·stride, …) of `x` (a copy is returned). */
export function ropeRef(x: Float32Array, S: number, heads: number, hd: number, stride: number, off: number, theta: number, startPos: number): Float64Array {
  const out = Float64Array.from(x);
  const inv = ropeInvFreq(hd, theta);
  const half = hd / 2;
  for (let s = 0; s < S; s++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = Math.fround(inv[i] * (startPos + s)); // HF: float32 product
        const j = off + s * stride + h * hd + i;
        const x1 = x[j], x2 = x[j + half];
        out[j] = x1 * Math.cos(a) - x2 * Math.sin(a);
        out[j + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
  return out;
}

// |x| < 1: each output is two products of a cos/sin (~1e-7 absolute after range reduction, which loses
// ~ulp(n·π/2 part) ≈ 1e-7 at position 1e4) plus 3 roundings → atol 1e-6. Past position ~6e4 the reduction's
// second product is no longer exact; the far-position case uses 4e-6.
const TOL = { atol: 1e-6, rtol: 0 };

interface Shape { S: number; heads: number; kvHeads: number; hd: number; theta: number; startPos: number; fused?: boolean; kAsOffsetBinding?: boolean; atol?: number }

async function check({ gpu, log }: CaseContext, sh: Shape, seed: number) {
  const { S, heads, kvHeads, hd, theta, startPos } = sh;
  const tol = { ...TOL, atol: sh.atol ?? TOL.atol };
  const rec = gpu.recorder();
  if (sh.fused) {
    // One [S, (heads + 2·kvHeads)·hd] buffer: q | k | v per row; v must come back untouched.
    const stride = (heads + 2 * kvHeads) * hd;
    const x = randomF32(S * stride, seed);
    const xb = upload(gpu, x);
    // k either as element offset heads·hd into the same binding, or as a binding at a 256-byte offset.
    const kArgs = sh.kAsOffsetBinding ? { k: { buffer: xb, offset: 256 }, kOffset: heads * hd - 64 } : { k: xb, kOffset: heads * hd };
    rope(gpu, rec, { q: xb, S, heads, kvHeads, headDim: hd, theta, startPos, qStride: stride, kStride: stride, qOffset: 0, ...kArgs });
    rec.submit();
    const got = await readF32(gpu, xb, x.length);
    const afterQ = ropeRef(x, S, heads, hd, stride, 0, theta, startPos);
    const ref = ropeRef(Float32Array.from(afterQ), S, kvHeads, hd, stride, heads * hd, theta, startPos);
    const st = assertClose(`rope fused ${S}x${heads}+${kvHeads}x${hd}`, got, ref, tol);
    log(`rope fused QKV S=${S} heads=${heads}+${kvHeads} hd=${hd} θ=${theta} pos ${startPos}: ${fmtStats(st)}`);
    gpu.allocator.destroy(xb);
    return;
  }
  const q = randomF32(S * heads * hd, seed), k = randomF32(S * kvHeads * hd, seed + 1);
  const qb = upload(gpu, q), kb = kvHeads ? upload(gpu, k) : undefined;
  rope(gpu, rec, { q: qb, k: kb, S, heads, kvHeads, headDim: hd, theta, startPos });
  rec.submit();
  const gq = await readF32(gpu, qb, q.length);
  const sq = assertClose(`rope q ${S}x${heads}x${hd}`, gq, ropeRef(q, S, heads, hd, heads * hd, 0, theta, startPos), tol);
  let line = `rope S=${S} heads=${heads}+${kvHeads} hd=${hd} θ=${theta} pos ${startPos}: q ${fmtStats(sq)}`;
  if (kb) {
    const gk = await readF32(gpu, kb, k.length);
    const sk = assertClose(`rope k ${S}x${kvHeads}x${hd}`, gk, ropeRef(k, S, kvHeads, hd, kvHeads * hd, 0, theta, startPos), tol);
    line += `, k ${fmtStats(sk)}`;
    gpu.allocator.destroy(kb);
  }
  log(line);
  gpu.allocator.destroy(qb);
}

export const cases = defineCases([
  { name: 'tiny S3 2+1 heads hd8 from 0', run: (c) => check(c, { S: 3, heads: 2, kvHeads: 1, hd: 8, theta: 10000, startPos: 0 }, 1) },
  { name: 'SmolVLM-like prefill S37 9+3 heads hd64 θ1e5 from 5', node: true, run: (c) => check(c, { S: 37, heads: 9, kvHeads: 3, hd: 64, theta: 100000, startPos: 5 }, 2) },
  { name: 'decode S1 9+3 hd64 at position 8191', run: (c) => check(c, { S: 1, heads: 9, kvHeads: 3, hd: 64, theta: 100000, startPos: 8191 }, 3) },
  { name: 'fused QKV buffer S4 4+2 hd16', run: (c) => check(c, { S: 4, heads: 4, kvHeads: 2, hd: 16, theta: 10000, startPos: 3, fused: true }, 4) },
  { name: 'fused QKV buffer, k as an offset binding', run: (c) => check(c, { S: 3, heads: 5, kvHeads: 1, hd: 16, theta: 10000, startPos: 0, fused: true, kAsOffsetBinding: true }, 8) },
  { name: 'q only S2 3 heads hd128', run: (c) => check(c, { S: 2, heads: 3, kvHeads: 0, hd: 128, theta: 500000, startPos: 7 }, 5) },
  { name: 'hd256 S2 1+1', run: (c) => check(c, { S: 2, heads: 1, kvHeads: 1, hd: 256, theta: 10000, startPos: 100 }, 6) },
  { name: 'far positions 65530..65532', run: (c) => check(c, { S: 3, heads: 1, kvHeads: 1, hd: 64, theta: 10000, startPos: 65530, atol: 4e-6 }, 7) },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(256);
      const rec = gpu.recorder();
      const base = { q: b, k: b, S: 1, heads: 1, kvHeads: 1, headDim: 8, theta: 10000, startPos: 0 };
      await expectReject('odd hd', () => rope(gpu, rec, { ...base, headDim: 7 }), 'ShapeMismatch');
      await expectReject('hd 258', () => rope(gpu, rec, { ...base, headDim: 258 }), 'ShapeMismatch');
      await expectReject('short q', () => rope(gpu, rec, { ...base, S: 9 }), 'BufferTooSmall');
      await expectReject('theta 0', () => rope(gpu, rec, { ...base, theta: 0 }), 'InvalidArgument');
      await expectReject('kvHeads without k', () => rope(gpu, rec, { ...base, k: undefined }), 'InvalidArgument');
      await expectReject('stride too short', () => rope(gpu, rec, { ...base, heads: 2, qStride: 8 }), 'ShapeMismatch');
      await expectReject('negative startPos', () => rope(gpu, rec, { ...base, startPos: -1 }), 'ShapeMismatch');
      await expectReject('invFreq length', () => rope(gpu, rec, { ...base, invFreq: new Float32Array(3) }), 'ShapeMismatch');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
    },
  },
]);
