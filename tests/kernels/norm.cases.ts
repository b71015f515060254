/**
 * RMSNorm and LayerNorm vs f64 references, every variant: workgroup (tree and subgroup reductions) and
 * row-per-invocation; ragged D, many rows (more than one row-variant workgroup, ragged), large means.
 */
import { layerNorm, rmsNorm, type NormVariant } from '../../src/kernels/norm.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext, type KernelCase } from '../harness/cases.ts';

export function rmsNormRef(x: Float32Array, w: Float32Array, rows: number, D: number, eps: number): Float64Array {
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[r * D + i] ** 2;
    const inv = 1 / Math.sqrt(ss / D + Math.fround(eps));
    for (let i = 0; i < D; i++) out[r * D + i] = w[i] * x[r * D + i] * inv;
  }
  return out;
}

export function layerNormRef(x: Float32Array, w: Float32Array, b: Float32Array, rows: number, D: number, eps: number): Float64Array {
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += x[r * D + i];
    const mean = s / D;
    let sq = 0;
    for (let i = 0; i < D; i++) sq += (x[r * D + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / D + Math.fround(eps));
    for (let i = 0; i < D; i++) out[r * D + i] = (x[r * D + i] - mean) * inv * w[i] + b[i];
  }
  return out;
}

// Outputs are O(|w|·3). f32 sums over D terms carry ~√D·2⁻²⁴ relative error, inverseSqrt 2 ULP, then
// ~3 roundings per element: rtol 1e-5 with atol 1e-5 (values near 0) bounds all of it for D ≤ 12288,
// also with a row mean of 50 (LayerNorm's two-pass variance keeps that from cancelling).
const TOL = { atol: 1e-5, rtol: 1e-5 };

interface Variant {
  variant: NormVariant;
  subgroups: boolean;
}

const VARIANTS: Variant[] = [
  { variant: 'workgroup', subgroups: false },
  { variant: 'workgroup', subgroups: true },
  { variant: 'row', subgroups: false },
];
const tag = (v: Variant) => (v.variant === 'row' ? '/row' : v.subgroups ? '+subgroups' : '');

async function check({ gpu, log }: CaseContext, kind: 'rms' | 'ln', v: Variant, rows: number, D: number, mean: number, seed: number) {
  const x = randomF32(rows * D, seed, 2).map((v) => v + mean);
  const w = randomF32(D, seed + 1, 1.5), b = randomF32(D, seed + 2, 0.5);
  const eps = kind === 'rms' ? 1e-5 : 1e-6;
  const xb = upload(gpu, x), wb = upload(gpu, w), bb = upload(gpu, b);
  const out = gpu.allocator.create(rows * D * 4);
  const rec = gpu.recorder();
  if (kind === 'rms') rmsNorm(gpu, rec, { x: xb, weight: wb, out, rows, D, eps, ...v });
  else layerNorm(gpu, rec, { x: xb, weight: wb, bias: bb, out, rows, D, eps, ...v });
  rec.submit();
  const got = await readF32(gpu, out, rows * D);
  const ref = kind === 'rms' ? rmsNormRef(x, w, rows, D, eps) : layerNormRef(x, w, b, rows, D, eps);
  const s = assertClose(`${kind} ${rows}x${D}`, got, ref, TOL);
  log(`${kind === 'rms' ? 'rms_norm' : 'layer_norm'}${tag(v)} ${rows}x${D} mean ${mean}: ${fmtStats(s)}`);
  for (const buf of [xb, wb, bb, out]) gpu.allocator.destroy(buf);
}

const shapes: Array<[number, number, number]> = [
  [1, 1, 0],
  [3, 37, 0],
  [5, 768, 0.3],
  [2, 4099, 50],
  [1, 12288, 0],
  [70, 19, 0], // many rows: every row its own workgroup (workgroup), two ragged workgroups of 64 rows (row)
  [131, 200, 20], // row variant: three workgroups, the last one nearly empty; mean 20
];

export const cases = defineCases([
  ...(['rms', 'ln'] as const).flatMap((kind) =>
    VARIANTS.flatMap((v) =>
      shapes.map(([rows, D, mean], i): KernelCase => ({
        name: `${kind === 'rms' ? 'rms_norm' : 'layer_norm'}${tag(v)} ${rows}x${D}${mean ? ` mean ${mean}` : ''}`,
        needs: v.subgroups ? ['subgroups'] : undefined,
        node: i === 3 || (v.variant === 'row' && i === 6),
        run: (c) => check(c, kind, v, rows, D, mean, 10 * i + (kind === 'rms' ? 1 : 2)),
      })),
    ),
  ),
  {
    // Past 65535 workgroups the row variant's grid splits over x/y (64·65535 rows is too much for a test):
    // a context claiming a limit of 3 workgroups per dimension exercises the split (8 workgroups → 3×3).
    name: 'row variant: grid split over x/y (limit 3 workgroups per dimension)',
    async run({ gpu, log }) {
      const small = new GpuContext(gpu.device, { ...gpu.caps, limits: { ...gpu.caps.limits, maxComputeWorkgroupsPerDimension: 3 } }, gpu.variants);
      await check({ gpu: small, log }, 'ln', { variant: 'row', subgroups: false }, 64 * 7 + 5, 9, 0, 77);
      await check({ gpu: small, log }, 'rms', { variant: 'row', subgroups: false }, 64 * 7 + 5, 9, 0, 78);
    },
  },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(64), o = gpu.allocator.create(64);
      const rec = gpu.recorder();
      await expectReject('D=0', () => rmsNorm(gpu, rec, { x: b, weight: b, out: o, rows: 1, D: 0, eps: 1e-5 }), 'ShapeMismatch');
      await expectReject('short x', () => rmsNorm(gpu, rec, { x: b, weight: b, out: o, rows: 2, D: 9, eps: 1e-5 }), 'BufferTooSmall');
      await expectReject('short bias', () => layerNorm(gpu, rec, { x: o, weight: o, bias: gpu.allocator.create(4), out: b, rows: 1, D: 4, eps: 1e-6 }), 'BufferTooSmall');
      await expectReject('negative eps', () => layerNorm(gpu, rec, { x: b, weight: b, bias: b, out: o, rows: 1, D: 4, eps: -1 }), 'InvalidArgument');
      await expectReject('out = x', () => rmsNorm(gpu, rec, { x: b, weight: o, out: b, rows: 1, D: 4, eps: 1e-5 }), 'InvalidArgument');
      await expectReject('unknown variant', () => rmsNorm(gpu, rec, { x: b, weight: b, out: o, rows: 1, D: 4, eps: 1e-5, variant: 'tile' as never }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(o);
    },
  },
]);
