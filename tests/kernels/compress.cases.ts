/**
 * Low-resolution-query token compression vs an f64 reference: ragged grids, local / overlapping /
 * global windows, pooled and learned queries, with and without Q/K/V/O projections, every
 * attention workgroup size, and bad arguments rejected before any dispatch.
 */
import { compress, compressGrid, compressPool, compressWorkspaceBytes, type CompressArgs, type CompressLinear } from '../../src/kernels/compress.ts';
import { dequantizeInt4F64, quantizeInt4, uploadInt4 } from '../../src/kernels/int4.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { assertClose, expectReject, fmtStats, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

type Lin = { w: ArrayLike<number>; b?: Float32Array };
export interface RefArgs {
  x: Float32Array;
  F: number; H: number; W: number; C: number; heads: number; s: number;
  window?: number | 'global';
  stride?: number;
  queries?: Float32Array;
  proj?: { q?: Lin; k?: Lin; v?: Lin; o?: Lin };
  scale?: number;
  residual?: boolean;
}

/** out[r] = W·in[r] + b for rows of length C (nn.Linear layout), in f64. */
function linear(inp: ArrayLike<number>, rows: number, C: number, lin: Lin | undefined): Float64Array {
  const out = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++)
    for (let n = 0; n < C; n++) {
      if (!lin) {
        out[r * C + n] = inp[r * C + n];
        continue;
      }
      let s = lin.b ? lin.b[n] : 0;
      for (let k = 0; k < C; k++) s += inp[r * C + k] * lin.w[n * C + k];
      out[r * C + n] = s;
    }
  return out;
}

/** f64 reference of the documented formula (src/kernels/compress.ts). */
export function compressRef(a: RefArgs): Float64Array {
  const { F, H, W, C, heads, s } = a;
  const hd = C / heads;
  const { Hq, Wq } = compressGrid(H, W, s);
  const Nq = Hq * Wq;
  const scale = a.scale ?? 1 / Math.sqrt(hd);
  const win = a.window === 'global' ? 0 : a.window ?? s;
  const stride = a.stride ?? s;
  const pad = Math.floor((win - stride) / 2);
  const y = new Float64Array(F * Nq * C);
  for (let f = 0; f < F; f++) {
    const xf = a.x.subarray(f * H * W * C, (f + 1) * H * W * C);
    const k = linear(xf, H * W, C, a.proj?.k), v = linear(xf, H * W, C, a.proj?.v);
    const q0 = new Float64Array(Nq * C);
    for (let i = 0; i < Hq; i++)
      for (let j = 0; j < Wq; j++) {
        const qi = i * Wq + j;
        if (a.queries) {
          for (let c = 0; c < C; c++) q0[qi * C + c] = a.queries[qi * C + c];
          continue;
        }
        const r1 = Math.min(i * s + s, H), c1 = Math.min(j * s + s, W);
        const cnt = (r1 - i * s) * (c1 - j * s);
        for (let r = i * s; r < r1; r++) for (let cc = j * s; cc < c1; cc++) for (let c = 0; c < C; c++) q0[qi * C + c] += xf[(r * W + cc) * C + c] / cnt;
      }
    const q = linear(q0, Nq, C, a.proj?.q);
    const att = new Float64Array(Nq * C);
    for (let i = 0; i < Hq; i++)
      for (let j = 0; j < Wq; j++) {
        const qi = i * Wq + j;
        let r0 = 0, r1 = H, c0 = 0, c1 = W;
        if (a.window !== 'global') {
          r0 = Math.max(i * stride - pad, 0); r1 = Math.min(i * stride - pad + win, H);
          c0 = Math.max(j * stride - pad, 0); c1 = Math.min(j * stride - pad + win, W);
        }
        const toks: number[] = [];
        for (let r = r0; r < r1; r++) for (let cc = c0; cc < c1; cc++) toks.push(r * W + cc);
        for (let h = 0; h < heads; h++) {
          const sc = toks.map((t) => {
            let d = 0;
            for (let e = 0; e < hd; e++) d += q[qi * C + h * hd + e] * k[t * C + h * hd + e];
            return d * scale;
          });
          const mx = Math.max(...sc);
          const p = sc.map((z) => Math.exp(z - mx));
          const sum = p.reduce((u, z) => u + z, 0);
          for (let e = 0; e < hd; e++) {
            let o = 0;
            toks.forEach((t, ti) => (o += p[ti] * v[t * C + h * hd + e]));
            att[qi * C + h * hd + e] = o / sum;
          }
        }
      }
    const o = linear(att, Nq, C, a.proj?.o);
    for (let n = 0; n < Nq * C; n++) y[f * Nq * C + n] = o[n] + (a.residual ? q0[n] : 0);
  }
  return y;
}

interface Cfg {
  F: number; H: number; W: number; C: number; heads: number; s: number;
  window?: number | 'global';
  stride?: number;
  learned?: boolean;
  proj?: string; // subset of 'qkvo'; upper case = with bias
  /** Quantize the projections to int4 (group 32, f16 scales); the reference uses the dequantized weights. */
  int4?: boolean;
  scale?: number;
  residual?: boolean;
  xScale?: number;
  workgroupSize?: 64 | 256;
  variant?: 'row' | 'workgroup';
  /** Tolerance (see `tol`). */
  atol?: number;
}

function makeLin(C: number, seed: number, bias: boolean): Lin {
  // Weights ~ U(±1/√C) keep activations O(1), like trained projections.
  return { w: randomF32(C * C, seed, 1 / Math.sqrt(C)), b: bias ? randomF32(C, seed + 1, 0.1) : undefined };
}

async function check({ gpu, log }: CaseContext, cfg: Cfg, seed: number) {
  const { F, H, W, C, heads, s } = cfg;
  const { Hq, Wq } = compressGrid(H, W, s);
  const Nq = Hq * Wq;
  const x = randomF32(F * H * W * C, seed, cfg.xScale ?? 1);
  const queries = cfg.learned ? randomF32(Nq * C, seed + 1) : undefined;
  const proj: RefArgs['proj'] = {};
  const owned: GPUBuffer[] = [];
  const up = (d: Float32Array) => (owned.push(upload(gpu, d)), owned[owned.length - 1]);
  const gproj: CompressArgs['proj'] = {};
  for (const [i, ch] of [...(cfg.proj ?? '')].entries()) {
    const name = ch.toLowerCase() as 'q';
    const lin = makeLin(C, seed + 10 + 2 * i, ch !== name);
    const bias = lin.b ? up(lin.b) : undefined;
    if (cfg.int4) {
      const qm = quantizeInt4(lin.w as Float32Array, C, C, { group: 32, scaleType: 'f16' });
      const w = uploadInt4(gpu, qm);
      owned.push(w.packed as GPUBuffer, w.scales as GPUBuffer);
      gproj[name] = { int4: w, bias } satisfies CompressLinear;
      proj[name] = { w: dequantizeInt4F64(qm), b: lin.b };
    } else {
      gproj[name] = { w: up(lin.w as Float32Array), bias } satisfies CompressLinear;
      proj[name] = lin;
    }
  }
  const ref = compressRef({ x, F, H, W, C, heads, s, window: cfg.window, stride: cfg.stride, queries, proj, scale: cfg.scale, residual: cfg.residual });

  const args: CompressArgs = {
    x: up(x), out: gpu.allocator.create(F * Nq * C * 4), F, H, W, C, heads, s,
    window: cfg.window, stride: cfg.stride, queries: queries ? up(queries) : undefined,
    proj: gproj, scale: cfg.scale, residual: cfg.residual, workgroupSize: cfg.workgroupSize, variant: cfg.variant,
  };
  owned.push(args.out as GPUBuffer);
  const wsBytes = compressWorkspaceBytes({ ...args, learnedQueries: !!queries });
  if (wsBytes) args.workspace = (owned.push(gpu.allocator.create(wsBytes)), owned[owned.length - 1]);
  const rec = gpu.recorder();
  compress(gpu, rec, args);
  const dispatches = rec.dispatchCount;
  rec.submit();
  const got = await readF32(gpu, args.out as GPUBuffer, F * Nq * C);
  // Tolerance: f32 dots over hd (scores) and C (projections), softmax weights of O(1) values, all
  // with f32 accumulation: errors ~ √K·eps·|terms|; 1e-5 absolute covers hd ≤ 768 with margin,
  // projections add their matmul error (K = C) twice in series, so √C·2e-6 more.
  const atol = cfg.atol ?? 1e-5 + (cfg.proj ? 2e-6 * Math.sqrt(C) * (cfg.xScale ?? 1) : 0);
  const st = assertClose(`compress ${JSON.stringify(cfg)}`, got, ref, { atol, rtol: 1e-4 });
  log(`${cfg.variant ?? 'default'} ${F}x${H}x${W}x${C} h${heads} s${s} ${cfg.window ?? ''}${cfg.stride ? `/${cfg.stride}` : ''}${cfg.learned ? ' learned' : ''}${cfg.proj ? ` proj ${cfg.proj}` : ''}${cfg.residual ? ' +res' : ''} → ${F}x${Hq}x${Wq}: ${fmtStats(st)} (atol ${atol.toExponential(1)}, ${dispatches} dispatches, ws ${wsBytes} B)`);
  for (const b of owned) gpu.allocator.destroy(b);
}

const c = (name: string, cfg: Cfg, seed: number, node = false) => ({ name, node, run: (ctx: CaseContext) => check(ctx, cfg, seed) });
/** The case on both attention kernels (the row kernel only where head_dim ≤ 256). */
const both = (name: string, cfg: Cfg, seed: number, node = false) => [
  c(`workgroup: ${name}`, { ...cfg, variant: 'workgroup' }, seed, node),
  ...(cfg.C / cfg.heads <= 256 ? [c(`row: ${name}`, { ...cfg, variant: 'row' }, seed, node)] : []),
];

async function badArgs(gpu: GpuContext) {
  const b = gpu.allocator.create(4096);
  const big = gpu.allocator.create(1 << 16);
  const rec = gpu.recorder();
  const base = { x: b, out: big, F: 1, H: 4, W: 4, C: 8, heads: 2, s: 2 };
  await expectReject('heads ∤ C', () => compress(gpu, rec, { ...base, heads: 3 }), 'ShapeMismatch');
  await expectReject('s = 0', () => compress(gpu, rec, { ...base, s: 0 }), 'ShapeMismatch');
  await expectReject('H = 0', () => compress(gpu, rec, { ...base, H: 0 }), 'ShapeMismatch');
  await expectReject('window < stride', () => compress(gpu, rec, { ...base, window: 1, stride: 2 }), 'InvalidArgument');
  await expectReject('window 0', () => compress(gpu, rec, { ...base, window: 0 }), 'InvalidArgument');
  await expectReject('stride past grid', () => compress(gpu, rec, { ...base, window: 4, stride: 4 }), 'InvalidArgument');
  await expectReject('short x', () => compress(gpu, rec, { ...base, C: 128, heads: 4 }), 'BufferTooSmall');
  await expectReject('short out', () => compress(gpu, rec, { ...base, x: big, out: b, C: 256, heads: 4, F: 2 }), 'BufferTooSmall');
  await expectReject('short queries', () => compress(gpu, rec, { ...base, queries: gpu.allocator.create(16) }), 'BufferTooSmall');
  await expectReject('short weights', () => compress(gpu, rec, { ...base, proj: { k: { w: b } }, C: 48, heads: 4, x: big, out: big }), 'BufferTooSmall');
  await expectReject('no workspace', () => compress(gpu, rec, { ...base, proj: { v: { w: b } } }), 'InvalidArgument');
  await expectReject('short workspace', () => compress(gpu, rec, { ...base, proj: { v: { w: b } }, workspace: gpu.allocator.create(64) }), 'BufferTooSmall');
  await expectReject('out aliases x', () => compress(gpu, rec, { ...base, out: b }), 'InvalidArgument');
  const int4 = { packed: b, scales: b, N: 8, K: 4, group: 32 as const, scaleType: 'f32' as const };
  await expectReject('int4 weights not C×C', () => compress(gpu, rec, { ...base, proj: { q: { int4 } } }), 'ShapeMismatch');
  await expectReject('int4 bad group', () => compress(gpu, rec, { ...base, proj: { q: { int4: { ...int4, K: 8, group: 16 as 32 } } } }), 'InvalidArgument');
  await expectReject('too many heads', () => compress(gpu, rec, { ...base, C: 512, heads: 512, x: big, out: big }), 'UnsupportedFeature');
  await expectReject('C too large for WG', () => compress(gpu, rec, { ...base, C: 1024, heads: 8, x: big, out: big, workgroupSize: 64 }), 'UnsupportedFeature');
  await expectReject('row variant, head_dim 512', () => compress(gpu, rec, { ...base, C: 512, heads: 1, x: big, out: big, variant: 'row' }), 'UnsupportedFeature');
  await expectReject('NaN scale', () => compress(gpu, rec, { ...base, scale: NaN }), 'InvalidArgument');
  await expectReject('pool s = 0', () => compressPool(gpu, rec, { x: b, out: big, F: 1, H: 4, W: 4, C: 8, s: 0 }), 'ShapeMismatch');
  if (rec.dispatchCount !== 0) throw new Error(`expected no dispatch recorded, got ${rec.dispatchCount}`);
  gpu.allocator.destroy(b);
  gpu.allocator.destroy(big);
}

export const cases = defineCases([
  ...both('8x8 s2 → 4x4, C16 h1, 2 frames', { F: 2, H: 8, W: 8, C: 16, heads: 1, s: 2 }, 1),
  ...both('ragged 7x5 s2, C24 h4', { F: 1, H: 7, W: 5, C: 24, heads: 4, s: 2 }, 2),
  ...both('ragged 9x9 s4 + residual, C32 h4', { F: 2, H: 9, W: 9, C: 32, heads: 4, s: 4, residual: true }, 3),
  ...both('1x1 s2, C8 h8 (head_dim 1)', { F: 1, H: 1, W: 1, C: 8, heads: 8, s: 2 }, 4),
  ...both('global window 6x5 s2, C32 h4', { F: 2, H: 6, W: 5, C: 32, heads: 4, s: 2, window: 'global' }, 5),
  ...both('window 3 stride 2 on 8x7, C16 h2', { F: 1, H: 8, W: 7, C: 16, heads: 2, s: 2, window: 3, stride: 2 }, 6),
  ...both('window 4 stride 2 (pad 1) on 7x9 + residual, C20 h5', { F: 1, H: 7, W: 9, C: 20, heads: 5, s: 2, window: 4, residual: true }, 7),
  ...both('global, many tiles, large scores (online softmax), C256 h2', { F: 1, H: 10, W: 9, C: 256, heads: 2, s: 3, window: 'global', xScale: 3, scale: 0.5, atol: 1e-4 }, 8),
  ...both('learned queries, local window, residual, C24 h3', { F: 2, H: 5, W: 6, C: 24, heads: 3, s: 2, learned: true, residual: true }, 9),
  ...both('learned queries, global (resampler) + QKVO proj', { F: 2, H: 6, W: 6, C: 32, heads: 4, s: 3, window: 'global', learned: true, proj: 'QKVO', residual: true }, 10),
  ...both('QKVO proj with bias + residual, 5x6 s2 C48 h4', { F: 2, H: 5, W: 6, C: 48, heads: 4, s: 2, proj: 'QKVO', residual: true }, 11, true),
  ...both('Q proj only + residual, C32 h2', { F: 2, H: 5, W: 4, C: 32, heads: 2, s: 2, proj: 'Q', residual: true }, 12),
  ...both('K,V proj only, window 3/2, C32 h4', { F: 1, H: 6, W: 7, C: 32, heads: 4, s: 2, window: 3, stride: 2, proj: 'kV' }, 13),
  ...both('int4 QKVO proj with bias + residual, 5x4 s2 C64 h4', { F: 2, H: 5, W: 4, C: 64, heads: 4, s: 2, proj: 'QKVO', int4: true, residual: true }, 19),
  ...both('O proj without residual, custom scale', { F: 1, H: 4, W: 5, C: 16, heads: 2, s: 2, proj: 'o', scale: 0.3 }, 14),
  ...both('heads 12, C768, 4x4 s2', { F: 1, H: 4, W: 4, C: 768, heads: 12, s: 2 }, 15, true),
  // Projections at C=768 cost SwiftShader ~10 s of matmul; C=192 with 12 heads covers the same paths.
  ...both('heads 12, C192, 5x4 s2 + QKVO proj + residual', { F: 1, H: 5, W: 4, C: 192, heads: 12, s: 2, proj: 'QKVO', residual: true }, 16),
  ...both('heads 1, C768, ragged 3x3 s2', { F: 1, H: 3, W: 3, C: 768, heads: 1, s: 2 }, 17),
  ...both('SmolVLM-like 8x8 s2, C576 h9, 2 frames', { F: 2, H: 8, W: 8, C: 576, heads: 9, s: 2 }, 18),
  ...([64, 256] as const).flatMap((wg, i) => [
    c(`WG${wg}: ragged 7x5 s2, C40 h4, window 3/2`, { F: 1, H: 7, W: 5, C: 40, heads: 4, s: 2, window: 3, stride: 2, variant: 'workgroup', workgroupSize: wg }, 20 + i),
    c(`WG${wg}: C${wg * 8 - 8} h8 (8 channels per invocation), global`, { F: 1, H: 3, W: 4, C: wg * 8 - 8, heads: 8, s: 2, window: 'global', variant: 'workgroup', workgroupSize: wg }, 30 + i),
  ]),
  c('WG64: 64 heads of 1 channel, window 3/2', { F: 1, H: 5, W: 5, C: 64, heads: 64, s: 2, window: 3, stride: 2, variant: 'workgroup', workgroupSize: 64 }, 35),
  c('96 heads of 2 channels (default WG256), global', { F: 1, H: 4, W: 3, C: 192, heads: 96, s: 2, window: 'global', variant: 'workgroup' }, 36),
  c('row: head_dim 256 (its largest), window 3/2', { F: 1, H: 5, W: 4, C: 512, heads: 2, s: 2, window: 3, stride: 2, variant: 'row' }, 37),
  c("adapter's default variant, ragged 5x7 s2 C96 h6", { F: 2, H: 5, W: 7, C: 96, heads: 6, s: 2, residual: true }, 38),
  {
    name: 'pool entry: ragged 7x5 s3',
    async run({ gpu, log }) {
      const F = 2, H = 7, W = 5, C = 12, s = 3;
      const { Hq, Wq } = compressGrid(H, W, s);
      const x = randomF32(F * H * W * C, 40);
      const xb = upload(gpu, x), out = gpu.allocator.create(F * Hq * Wq * C * 4);
      const rec = gpu.recorder();
      compressPool(gpu, rec, { x: xb, out, F, H, W, C, s });
      rec.submit();
      const got = await readF32(gpu, out, F * Hq * Wq * C);
      // Pooled query = the residual term of the reference with zero attention: compare directly.
      const ref = new Float64Array(F * Hq * Wq * C);
      for (let f = 0; f < F; f++)
        for (let i = 0; i < Hq; i++)
          for (let j = 0; j < Wq; j++) {
            const r1 = Math.min(i * s + s, H), c1 = Math.min(j * s + s, W), n = (r1 - i * s) * (c1 - j * s);
            for (let r = i * s; r < r1; r++) for (let cc = j * s; cc < c1; cc++) for (let ch = 0; ch < C; ch++) ref[((f * Hq + i) * Wq + j) * C + ch] += x[((f * H + r) * W + cc) * C + ch] / n;
          }
      // A mean of ≤ 9 f32 values in [-1, 1): error ≤ ~10 ulp.
      const st = assertClose('compressPool', got, ref, { atol: 1e-6, rtol: 1e-6 });
      log(`pool ${F}x${H}x${W}x${C} s${s}: ${fmtStats(st)}`);
      gpu.allocator.destroy(xb);
      gpu.allocator.destroy(out);
    },
  },
  { name: 'rejects bad arguments before dispatch', run: ({ gpu }) => badArgs(gpu) },
]);
