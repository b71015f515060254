/**
 * int4 decode GEMV (M = 1) at SmolVLM decode shapes (K→N), two comparisons:
 *  - against a plain shader copy of the same weight bytes (the bandwidth roofline): GB/s and ours ÷ copy;
 *  - against onnxruntime-web's MatMulNBits (WebGPU EP) on the same GPUDevice with the same weights
 *    (models built in Node by `assets()`), its output checked against the reference before its time counts:
 *    peer time ÷ our time.
 * Weights are random nibbles with f16 scales (group 32): timing does not depend on the values.
 */
import { copy } from '../src/kernels/copy.ts';
import { f32ToF16Bits } from '../src/kernels/dtype.ts';
import { int4Layout, int4Scale, uploadInt4, type Int4Matrix } from '../src/kernels/int4.ts';
import { int4Gemv } from '../src/kernels/int4_gemv.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { readF32, upload } from '../src/gpu/io.ts';
import { compare, randomF32, rng } from '../tests/harness/check.ts';
import { timeKernel, timeWall } from './timing.ts';
import type { Bench, BenchContext, BenchResult } from './types.ts';

/** SmolVLM decode projections, K → N: q/o (576→576 is small), MLP up/down, lm_head; SmolVLM-500M MLP. */
const SHAPES: Array<[number, number]> = [
  [576, 1536],
  [1536, 576],
  [576, 49280],
  [960, 2560],
  [2560, 960],
];

const assetName = (K: number, N: number) => `int4-matmulnbits-${K}x${N}.onnx`;

/** A deterministic random int4 matrix (group 32, f16 scales in [0.01, 0.03)); K must be a multiple of 32. */
export function randomInt4(N: number, K: number): Int4Matrix {
  const shape = { N, K, group: 32 as const, scaleType: 'f16' as const };
  const l = int4Layout(shape);
  const r = rng(N * 7919 + K);
  const packed = new Uint32Array(l.packedWords);
  for (let i = 0; i < packed.length; i++) packed[i] = (r() * 4294967296) >>> 0;
  const scales = new Uint32Array(l.scaleWords);
  for (let i = 0; i < scales.length; i++) scales[i] = f32ToF16Bits(0.01 + 0.02 * r()) | (f32ToF16Bits(0.01 + 0.02 * r()) << 16);
  return { ...shape, blocks: l.blocks, groups: l.groups, scaleStride: l.scaleStride, packed, scales };
}

/** y = dequant(W)·x in f64 (the check for the peer and for us). */
function reference(m: Int4Matrix, x: Float32Array): Float64Array {
  const y = new Float64Array(m.N);
  for (let n = 0; n < m.N; n++) {
    let acc = 0;
    for (let b = 0; b < m.blocks; b++) {
      let d = 0;
      for (let j = 0; j < 4; j++) {
        const w = m.packed[(n * m.blocks + b) * 4 + j];
        for (let i = 0; i < 8; i++) d += (((w >>> (4 * i)) & 15) - 8) * x[b * 32 + 4 * i + j];
      }
      acc += d * int4Scale(m, n, b); // group 32: block b is group b
    }
    y[n] = acc;
  }
  return y;
}

/** Called by bench/run.ts in Node: the MatMulNBits models holding the same weights as `randomInt4`. */
export async function assets(): Promise<Record<string, Uint8Array>> {
  const { buildMatMulNBitsModel } = await import('./onnx-models.ts');
  const { toMatMulNBits } = await import('../src/kernels/int4.ts');
  const out: Record<string, Uint8Array> = {};
  for (const [K, N] of SHAPES) {
    const { B, scales, blockSize } = toMatMulNBits(randomInt4(N, K));
    out[assetName(K, N)] = buildMatMulNBitsModel({ N, K, blockSize, B, scales, M: 1 });
  }
  return out;
}

type Variant = { variant: 'row' | 'workgroup'; subgroups: boolean; name: string };
function variants(gpu: GpuContext): Variant[] {
  const v: Variant[] = [{ variant: 'row', subgroups: false, name: 'row' }, { variant: 'workgroup', subgroups: false, name: 'workgroup' }];
  if (gpu.caps.subgroups) v.push({ variant: 'workgroup', subgroups: true, name: 'workgroup+sg' });
  return v;
}

/** Fewer iterations where one run takes long (the lm_head shape on CPU adapters: 0.1–10 s per run). */
const iterOpts = (N: number, K: number) => (N * K > 10_000_000 ? { warmup: 1, iters: 3, batch: 1 } : { warmup: 2, iters: 7 });

interface Prepared {
  m: Int4Matrix;
  x: Float32Array;
  w: ReturnType<typeof uploadInt4>;
  xb: GPUBuffer;
  y: GPUBuffer;
  free(): void;
}
function prepare(gpu: GpuContext, K: number, N: number): Prepared {
  const m = randomInt4(N, K);
  const x = randomF32(K, K + N);
  const w = uploadInt4(gpu, m, undefined, `bench ${K}x${N}`);
  const xb = upload(gpu, x), y = gpu.allocator.create(N * 4);
  return { m, x, w, xb, y, free: () => [w.packed, w.scales, xb, y].forEach((b) => gpu.allocator.destroy(b as GPUBuffer)) };
}

/** Checks our kernel's output once before timing it (a fast wrong kernel is no result). */
async function checkOurs(gpu: GpuContext, p: Prepared, v: Variant): Promise<number> {
  const rec = gpu.recorder();
  int4Gemv(gpu, rec, { x: p.xb, w: p.w, out: p.y, M: 1, variant: v.variant, subgroups: v.subgroups });
  rec.submit();
  const got = await readF32(gpu, p.y, p.m.N);
  return compare(got, reference(p.m, p.x)).relL2;
}

const shapeName = (K: number, N: number) => `${K}→${N}`;

async function vsCopy({ gpu, log }: BenchContext): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const [K, N] of SHAPES) {
    const p = prepare(gpu, K, N);
    const l = int4Layout(p.m);
    const weightBytes = (l.packedWords + l.scaleWords) * 4;
    const traffic = weightBytes + K * 4 + N * 4;
    let best = 0;
    for (const v of variants(gpu)) {
      if (gpu.caps.software && v.variant === 'workgroup' && N * K > 10_000_000) {
        log(`int4 gemv/${v.name} ${shapeName(K, N)}: skipped on a CPU adapter (2–40× slower than row at the other shapes; up to a minute per run)`);
        continue;
      }
      const err = await checkOurs(gpu, p, v);
      if (!(err < 1e-5)) throw new Error(`int4 gemv/${v.name} ${shapeName(K, N)}: relL2 ${err} vs reference`);
      const t = await timeKernel(gpu, (rec) => int4Gemv(gpu, rec, { x: p.xb, w: p.w, out: p.y, M: 1, variant: v.variant, subgroups: v.subgroups }), iterOpts(N, K));
      const gbs = traffic / (t.ms * 1e6);
      best = Math.max(best, gbs);
      out.push({ name: `int4 gemv/${v.name} ${shapeName(K, N)}`, value: gbs, unit: 'GB/s' });
      log(`int4 gemv/${v.name} ${shapeName(K, N)}: ${t.ms.toFixed(3)} ms (${t.clock}), relL2 ${err.toExponential(1)}`);
    }
    // The roofline: a shader copy of the weight bytes (read + write counted).
    const dst = gpu.allocator.create(weightBytes);
    const src = gpu.allocator.create(weightBytes);
    const tc = await timeKernel(gpu, (rec) => copy(gpu, rec, { src, dst, bytes: weightBytes }), iterOpts(N, K));
    const copyGbs = (2 * weightBytes) / (tc.ms * 1e6);
    out.push({ name: `copy ${(weightBytes / 2 ** 20).toFixed(2)} MiB (int4 ${shapeName(K, N)} weights)`, value: copyGbs, unit: 'GB/s' });
    out.push({ name: `int4 gemv best ÷ copy ${shapeName(K, N)}`, value: best / copyGbs, unit: '×' });
    gpu.allocator.destroy(src);
    gpu.allocator.destroy(dst);
    p.free();
  }
  return out;
}

type Ort = typeof import('onnxruntime-web/webgpu');

async function vsOrt({ gpu, asset, log }: BenchContext): Promise<BenchResult[]> {
  const ort: Ort = await import('onnxruntime-web/webgpu');
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = 1;
  const out: BenchResult[] = [];
  for (const [K, N] of SHAPES) {
    const p = prepare(gpu, K, N);
    const ref = reference(p.m, p.x);
    const session = await ort.InferenceSession.create(new Uint8Array(await asset(assetName(K, N))), {
      executionProviders: [{ name: 'webgpu', device: gpu.device } as never],
      preferredOutputLocation: 'gpu-buffer',
      extra: { session: { disable_cpu_ep_fallback: '1' } },
    });
    try {
      const feeds = { A: ort.Tensor.fromGpuBuffer(p.xb, { dataType: 'float32', dims: [1, K] }) };
      const first = await session.run(feeds);
      const peerErr = compare((await first.Y.getData()) as Float32Array, ref).relL2;
      first.Y.dispose();
      // ORT's own WebGPU kernel may accumulate in f16 for f16 models; ours are f32 models: expect ~1e-6.
      if (!(peerErr < 1e-3)) {
        log(`ORT MatMulNBits ${shapeName(K, N)}: output wrong (relL2 ${peerErr.toExponential(2)} vs reference) — not timed`);
        out.push({ name: `ORT MatMulNBits ${shapeName(K, N)} relL2 error (wrong, not timed)`, value: peerErr, unit: '' });
        continue;
      }
      const peer = await timeWall(async () => {
        const r = await session.run(feeds);
        r.Y.dispose();
        await gpu.device.queue.onSubmittedWorkDone();
      }, iterOpts(N, K));
      // Ours as the engine runs it (the adapter's variant), timed the same way: one submit per run, waited for.
      const v = gpu.variants.gemv, sg = v === 'workgroup' && gpu.variants.subgroups;
      const name = `${v}${sg ? '+sg' : ''}`;
      const ours = await timeKernel(gpu, (rec) => int4Gemv(gpu, rec, { x: p.xb, w: p.w, out: p.y, M: 1, variant: v, subgroups: sg }), { ...iterOpts(N, K), batch: 1 });
      log(`${shapeName(K, N)}: ORT ${peer.ms.toFixed(3)} ms (relL2 ${peerErr.toExponential(1)}), ours ${ours.ms.toFixed(3)} ms (${name})`);
      out.push({ name: `ORT MatMulNBits ${shapeName(K, N)}`, value: peer.ms, unit: 'ms' });
      out.push({ name: `int4 gemv (${name}) ${shapeName(K, N)}`, value: ours.ms, unit: 'ms' });
      out.push({ name: `ORT time ÷ our time ${shapeName(K, N)}`, value: peer.ms / ours.ms, unit: '×' });
    } finally {
      await session.release();
      p.free();
    }
  }
  return out;
}

export const benches: Bench[] = [
  { name: 'int4 gemv vs copy', run: vsCopy },
  { name: 'int4 gemv vs onnxruntime-web MatMulNBits', run: vsOrt },
];
