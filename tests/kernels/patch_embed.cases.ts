/** Patch embedding vs an f64 direct convolution (+ bias + position rows) on ragged shapes, both variants (tiled, register). */
import { patchEmbed } from '../../src/kernels/patch_embed.ts';
import type { MatmulVariant } from '../../src/kernels/matmul.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

/** Conv2d(C, D, p, stride p) written as the convolution sum, flattened to [frames, patches, D]. */
export function patchEmbedRef(x: Float32Array, w: Float32Array, bias: Float32Array | null, pos: Float32Array | null, frames: number, C: number, H: number, W: number, p: number, D: number): Float64Array {
  const nh = Math.floor(H / p), nw = Math.floor(W / p);
  const out = new Float64Array(frames * nh * nw * D);
  for (let f = 0; f < frames; f++)
    for (let py = 0; py < nh; py++)
      for (let px = 0; px < nw; px++) {
        const P = py * nw + px;
        for (let o = 0; o < D; o++) {
          let s = (bias ? bias[o] : 0) + (pos ? pos[P * D + o] : 0);
          for (let c = 0; c < C; c++)
            for (let ky = 0; ky < p; ky++)
              for (let kx = 0; kx < p; kx++) s += w[((o * C + c) * p + ky) * p + kx] * x[((f * C + c) * H + py * p + ky) * W + px * p + kx];
          out[(f * nh * nw + P) * D + o] = s;
        }
      }
  return out;
}

async function check({ gpu, log }: CaseContext, variant: MatmulVariant, frames: number, C: number, H: number, W: number, p: number, D: number, withBias: boolean, withPos: boolean, seed: number) {
  const nh = Math.floor(H / p), nw = Math.floor(W / p), K = C * p * p;
  const x = randomF32(frames * C * H * W, seed), w = randomF32(D * K, seed + 1, 0.1);
  const bias = withBias ? randomF32(D, seed + 2) : null, pos = withPos ? randomF32((nh * nw + 3) * D, seed + 3) : null;
  const xb = upload(gpu, x), wb = upload(gpu, w), bb = bias ? upload(gpu, bias) : undefined, pb = pos ? upload(gpu, pos) : undefined;
  const out = gpu.allocator.create(frames * nh * nw * D * 4);
  const rec = gpu.recorder();
  patchEmbed(gpu, rec, { pixels: xb, weight: wb, bias: bb, pos: pb, out, frames, C, H, W, p, D, variant });
  rec.submit();
  const got = await readF32(gpu, out, frames * nh * nw * D);
  // f32 accumulation of K = C·p² products of |x| < 1, |w| < 0.1: ~√K·2⁻²⁴·|terms| as in matmul's test.
  const s = assertClose(`patch_embed ${frames}x${C}x${H}x${W} p${p} D${D}`, got, patchEmbedRef(x, w, bias, pos, frames, C, H, W, p, D), { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 });
  // The register variant reads vec4s when p and W are multiples of 4 (main_register4): shapes cover both.
  log(`patch_embed/${variant}${variant === 'register' ? (p % 4 === 0 && W % 4 === 0 ? ' (vec4)' : ' (scalar)') : ''} frames=${frames} C=${C} ${H}x${W} p=${p} D=${D}${withBias ? ' +bias' : ''}${withPos ? ' +pos' : ''}: ${fmtStats(s)}`);
  for (const b of [xb, wb, bb, pb, out]) if (b) gpu.allocator.destroy(b);
}

export const cases = defineCases([
  ...(['tiled', 'register'] as const).flatMap((v) => [
    { name: `${v}: 1 frame 4x4 p2 D3`, run: (c: CaseContext) => check(c, v, 1, 3, 4, 4, 2, 3, true, true, 1) },
    { name: `${v}: 2 frames 24x20 p4 D70 (ragged tiles)`, node: true, run: (c: CaseContext) => check(c, v, 2, 3, 24, 20, 4, 70, true, true, 2) },
    { name: `${v}: p16 32x48 D64 (K = 768)`, node: true, run: (c: CaseContext) => check(c, v, 1, 3, 32, 48, 16, 64, true, true, 3) },
    { name: `${v}: valid conv drops the remainder 18x13 p4`, run: (c: CaseContext) => check(c, v, 2, 3, 18, 13, 4, 20, true, false, 4) },
    { name: `${v}: no bias, no pos, 9 frames (M > 64) 12x12 p3 D130`, run: (c: CaseContext) => check(c, v, 9, 3, 12, 12, 3, 130, false, false, 5) },
    { name: `${v}: one channel 8x8 p8 D5`, run: (c: CaseContext) => check(c, v, 1, 1, 8, 8, 8, 5, true, true, 6) },
  ]),
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(4096), o = gpu.allocator.create(4096);
      const rec = gpu.recorder();
      const base = { pixels: b, weight: b, out: o, frames: 1, H: 8, W: 8, p: 4, D: 4 };
      await expectReject('p > H', () => patchEmbed(gpu, rec, { ...base, p: 9 }), 'ShapeMismatch');
      await expectReject('D=0', () => patchEmbed(gpu, rec, { ...base, D: 0 }), 'ShapeMismatch');
      await expectReject('short weight', () => patchEmbed(gpu, rec, { ...base, D: 40 }), 'BufferTooSmall');
      await expectReject('short pos', () => patchEmbed(gpu, rec, { ...base, pos: gpu.allocator.create(16) }), 'BufferTooSmall');
      await expectReject('out = pixels', () => patchEmbed(gpu, rec, { ...base, out: b }), 'InvalidArgument');
      await expectReject('unknown variant', () => patchEmbed(gpu, rec, { ...base, variant: 'im2col' as never }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(o);
    },
  },
]);
