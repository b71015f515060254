/**
 * Attention benchmarks at SmolVLM text shapes (9 query / 3 KV heads, head_dim 64, causal):
 *  - prefill at 512 and 2048 tokens vs onnxruntime-web's GroupQueryAttention (WebGPU EP) on the same
 *    GPUDevice and the same input buffers; the peer's output is checked against ours (itself checked
 *    against the f64 reference) before its time counts. ORT's subgroup flash attention is wrong on
 *    SwiftShader's 4-wide subgroups: then both are re-run on a second device without `subgroups`.
 *  - decode (1 token) at a 4k context, both variants: K/V bytes read ÷ time, vs the read rate of a shader
 *    copy of the same bytes (the bandwidth roofline on this adapter); and ORT's GQA decode for scale (it
 *    also writes present K/V, about as many bytes as it reads).
 */
import { attentionDecode, attentionDecodeScratchBytes, decodePlan } from '../src/kernels/attention_decode.ts';
import { attentionPrefill } from '../src/kernels/attention_prefill.ts';
import { copy } from '../src/kernels/copy.ts';
import { GpuContext } from '../src/gpu/context.ts';
import { readF32, upload } from '../src/gpu/io.ts';
import { compare, randomF32 } from '../tests/harness/check.ts';
import { attentionRef } from '../tests/kernels/attention_ref.ts';
import { timeKernel, timeWall } from './timing.ts';
import type { Bench, BenchContext, BenchResult } from './types.ts';

const HEADS = 9, KV_HEADS = 3, HD = 64;
const QW = HEADS * HD, KW = KV_HEADS * HD;
const PREFILL_LENGTHS = [512, 2048];
const DECODE_CONTEXT = 4096;
const PREFILL_ASSET = 'attention-gqa-9x3-d64.onnx';
const DECODE_ASSET = 'attention-gqa-9x3-d64-past.onnx';

/** Called by bench/run.ts in Node: the GroupQueryAttention models (dynamic lengths). */
export async function assets(): Promise<Record<string, Uint8Array>> {
  const { buildGroupQueryAttentionModel } = await import('./onnx-models.ts');
  return {
    [PREFILL_ASSET]: buildGroupQueryAttentionModel({ heads: HEADS, kvHeads: KV_HEADS, headDim: HD }),
    [DECODE_ASSET]: buildGroupQueryAttentionModel({ heads: HEADS, kvHeads: KV_HEADS, headDim: HD, withPast: true }),
  };
}

type Ort = typeof import('onnxruntime-web/webgpu');
async function loadOrt(): Promise<Ort> {
  const ort: Ort = await import('onnxruntime-web/webgpu');
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = 1;
  return ort;
}

const iterOpts = (S: number) => (S > 1024 ? { warmup: 1, iters: 3, batch: 1 } : { warmup: 1, iters: 5, batch: 1 });
/** Causal attention FLOPs: Q·Kᵀ and P·V over the S(S+1)/2 visible pairs, 2 per multiply-add. */
const prefillFlops = (S: number) => 4 * HD * HEADS * ((S * (S + 1)) / 2);

interface PrefillInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  qb: GPUBuffer;
  kb: GPUBuffer;
  vb: GPUBuffer;
  out: GPUBuffer;
  free(): void;
}
function prefillInputs(gpu: GpuContext, S: number): PrefillInputs {
  const q = randomF32(S * QW, S, 2), k = randomF32(S * KW, S + 1), v = randomF32(S * KW, S + 2);
  const qb = upload(gpu, q), kb = upload(gpu, k), vb = upload(gpu, v), out = gpu.allocator.create(S * QW * 4);
  return { q, k, v, qb, kb, vb, out, free: () => [qb, kb, vb, out].forEach((b) => gpu.allocator.destroy(b)) };
}
const recordPrefill = (gpu: GpuContext, x: PrefillInputs, S: number) => (rec: Parameters<typeof attentionPrefill>[1]) =>
  attentionPrefill(gpu, rec, { q: x.qb, k: x.kb, v: x.vb, out: x.out, seqLen: S, heads: HEADS, kvHeads: KV_HEADS, headDim: HD, causal: true });

/** Runs our prefill once and checks its first and last 8 rows against the f64 reference; returns our output. */
async function checkedPrefill(gpu: GpuContext, x: PrefillInputs, S: number): Promise<Float32Array> {
  const rec = gpu.recorder();
  recordPrefill(gpu, x, S)(rec);
  rec.submit();
  const got = await readF32(gpu, x.out, S * QW);
  rec.destroy();
  for (const from of [0, S - 8]) {
    const ref = attentionRef({ q: x.q.subarray(from * QW, (from + 8) * QW), k: x.k, v: x.v, seqLen: 8, past: from, keys: S, heads: HEADS, kvHeads: KV_HEADS, headDim: HD, causal: true });
    const e = compare(got.subarray(from * QW, (from + 8) * QW), ref).relL2;
    if (!(e < 1e-5)) throw new Error(`attention_prefill S=${S} rows ${from}..${from + 7}: relL2 ${e} vs reference`);
  }
  return got;
}

/** ORT GQA prefill on `gpu`'s device: null when its output disagrees with ours (then it is not timed). */
async function ortPrefill(ort: Ort, gpu: GpuContext, model: Uint8Array, x: PrefillInputs, S: number, ours: Float32Array, log: (m: string) => void) {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [{ name: 'webgpu', device: gpu.device } as never],
    preferredOutputLocation: 'gpu-buffer',
    extra: { session: { disable_cpu_ep_fallback: '1' } },
  });
  const feeds = {
    query: ort.Tensor.fromGpuBuffer(x.qb, { dataType: 'float32', dims: [1, S, QW] }),
    key: ort.Tensor.fromGpuBuffer(x.kb, { dataType: 'float32', dims: [1, S, KW] }),
    value: ort.Tensor.fromGpuBuffer(x.vb, { dataType: 'float32', dims: [1, S, KW] }),
    seqlens_k: new ort.Tensor('int32', Int32Array.from([S - 1]), [1]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.from([S]), []),
  };
  try {
    const first = await session.run(feeds);
    const err = compare((await first.output.getData()) as Float32Array, ours).relL2;
    for (const t of Object.values(first)) t.dispose();
    if (!(err < 1e-4)) {
      log(`ORT GQA prefill S=${S} on ${gpu.caps.subgroups ? `a device with subgroups (${gpu.caps.subgroupMinSize}-wide)` : 'a device without subgroups'}: WRONG output, relL2 ${err.toExponential(2)} vs ours — not timed`);
      return { err, ms: null };
    }
    const t = await timeWall(async () => {
      const r = await session.run(feeds);
      for (const o of Object.values(r)) o.dispose();
      await gpu.device.queue.onSubmittedWorkDone();
    }, iterOpts(S));
    return { err, ms: t.ms };
  } finally {
    await session.release();
  }
}

async function prefillBench({ gpu, asset, log }: BenchContext): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const ort = await loadOrt();
  const model = new Uint8Array(await asset(PREFILL_ASSET));
  let plain: GpuContext | null = null; // a device without subgroups, made only if ORT needs it
  try {
    for (const S of PREFILL_LENGTHS) {
      const x = prefillInputs(gpu, S);
      const ours = await checkedPrefill(gpu, x, S);
      const t = await timeKernel(gpu, recordPrefill(gpu, x, S), iterOpts(S));
      out.push({ name: `attention prefill S=${S} 9/3 d64 causal`, value: t.ms, unit: 'ms' });
      out.push({ name: `attention prefill S=${S} GFLOP/s`, value: prefillFlops(S) / (t.ms * 1e6), unit: 'GFLOP/s' });
      let peer = await ortPrefill(ort, gpu, model, x, S, ours, log);
      let mine = t.ms, where = 'same device';
      if (peer.ms === null && gpu.caps.subgroups) {
        out.push({ name: `ORT GQA prefill S=${S} relL2 vs ours on the subgroups device (wrong, not timed)`, value: peer.err, unit: '' });
        plain ??= await GpuContext.create({ featureLevel: gpu.caps.featureLevel, disableFeatures: ['subgroups'] });
        const y = prefillInputs(plain, S);
        const oursPlain = await checkedPrefill(plain, y, S);
        peer = await ortPrefill(ort, plain, model, y, S, oursPlain, log);
        if (peer.ms !== null) mine = (await timeKernel(plain, recordPrefill(plain, y, S), iterOpts(S))).ms;
        where = 'a second device without subgroups';
        y.free();
      }
      if (peer.ms !== null) {
        log(`prefill S=${S}: ours ${mine.toFixed(1)} ms, ORT GQA ${peer.ms.toFixed(1)} ms (relL2 vs ours ${peer.err.toExponential(1)}) on ${where}`);
        out.push({ name: `ORT GQA prefill S=${S} (${where})`, value: peer.ms, unit: 'ms' });
        out.push({ name: `ORT time ÷ our time, prefill S=${S}`, value: peer.ms / mine, unit: '×' });
      }
      x.free();
    }
  } finally {
    plain?.destroy();
  }
  return out;
}

async function decodeBench({ gpu, asset, log }: BenchContext): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const L = DECODE_CONTEXT, capacity = L;
  const kvBytes = 2 * KV_HEADS * L * HD * 4;
  // The cache holds [kvHeads, capacity, hd]: with capacity = L it is also ORT's past_key layout (BNSH).
  const q = randomF32(QW, 1, 2), kc = randomF32(KV_HEADS * L * HD, 2), vc = randomF32(KV_HEADS * L * HD, 3);
  const qb = upload(gpu, q), kb = upload(gpu, kc), vb = upload(gpu, vc), o = gpu.allocator.create(QW * 4);
  const shape = { tokens: 1, kvLen: L, heads: HEADS, kvHeads: KV_HEADS, headDim: HD };
  const maxScratch = Math.max(...(['rows', 'tile'] as const).flatMap((variant) => [undefined, 128, 512].map((s) => attentionDecodeScratchBytes(gpu, { ...shape, splitSize: s, variant }))));
  const scratch = gpu.allocator.create(Math.max(16, maxScratch));
  const layout = { kind: 'cache' as const, capacity };
  const run = (splitSize?: number, variant?: 'rows' | 'tile') => (rec: Parameters<typeof attentionDecode>[1]) =>
    attentionDecode(gpu, rec, { ...shape, splitSize, variant, q: qb, k: kb, v: vb, out: o, scratch, kvLayout: layout });
  // Check once against the reference (token L-1 sees every key).
  const check = gpu.recorder();
  run()(check);
  check.submit();
  const ours = await readF32(gpu, o, QW);
  check.destroy();
  const ref = attentionRef({ q, k: transpose(kc, L), v: transpose(vc, L), seqLen: 1, past: L - 1, keys: L, heads: HEADS, kvHeads: KV_HEADS, headDim: HD, causal: true });
  const err = compare(ours, ref).relL2;
  if (!(err < 1e-5)) throw new Error(`attention_decode ctx ${L}: relL2 ${err} vs reference`);

  let best = 0;
  const defaultVariant = decodePlan(gpu, shape).variant;
  for (const [variant, split] of [['rows', undefined], ['rows', 512], ['tile', undefined], ['tile', 128], ['tile', 512]] as const) {
    const plan = decodePlan(gpu, { ...shape, splitSize: split, variant });
    const t = await timeKernel(gpu, run(split, variant), { warmup: 2, iters: 7, batch: 4 });
    const gbs = kvBytes / (t.ms * 1e6);
    best = Math.max(best, gbs);
    const name = `${variant}${variant === defaultVariant ? ' (default here)' : ''} ${split === undefined ? 'default ' : ''}split ${plan.splitSize}×${plan.nSplits}`;
    log(`decode ctx ${L} ${name}: ${t.ms.toFixed(3)} ms, ${gbs.toFixed(2)} GB/s of K/V`);
    out.push({ name: `attention decode ctx=${L} 9/3 d64 ${name}`, value: gbs, unit: 'GB/s' });
  }
  const src = gpu.allocator.create(kvBytes), dst = gpu.allocator.create(kvBytes);
  const tc = await timeKernel(gpu, (rec) => copy(gpu, rec, { src, dst, bytes: kvBytes }), { warmup: 2, iters: 7, batch: 4 });
  const copyGbs = (2 * kvBytes) / (tc.ms * 1e6); // read + write, as in int4.bench
  out.push({ name: `copy ${(kvBytes / 2 ** 20).toFixed(1)} MiB (decode K/V bytes)`, value: copyGbs, unit: 'GB/s' });
  // Bytes read per second, ours vs the copy's reads (the copy also writes as many bytes).
  out.push({ name: `attention decode ctx=${L} best ÷ copy read rate`, value: best / (copyGbs / 2), unit: '×' });
  for (const b of [src, dst]) gpu.allocator.destroy(b);

  // ORT GQA decode: past K/V [1, 3, L-1, 64] from the same cache buffers (first L-1 rows of each head are
  // not contiguous across heads with capacity L, so it gets its own copies), plus the new token's K/V row.
  try {
    const ort = await loadOrt();
    const P = L - 1;
    const pk = new Float32Array(KV_HEADS * P * HD), pv = new Float32Array(KV_HEADS * P * HD), nk = new Float32Array(KW), nv = new Float32Array(KW);
    for (let h = 0; h < KV_HEADS; h++) {
      pk.set(kc.subarray(h * L * HD, (h * L + P) * HD), h * P * HD);
      pv.set(vc.subarray(h * L * HD, (h * L + P) * HD), h * P * HD);
      nk.set(kc.subarray((h * L + P) * HD, (h * L + L) * HD), h * HD);
      nv.set(vc.subarray((h * L + P) * HD, (h * L + L) * HD), h * HD);
    }
    const bufs = [pk, pv, nk, nv].map((a) => upload(gpu, a));
    const session = await ort.InferenceSession.create(new Uint8Array(await asset(DECODE_ASSET)), {
      executionProviders: [{ name: 'webgpu', device: gpu.device } as never],
      preferredOutputLocation: 'gpu-buffer',
      extra: { session: { disable_cpu_ep_fallback: '1' } },
    });
    const feeds = {
      query: ort.Tensor.fromGpuBuffer(qb, { dataType: 'float32', dims: [1, 1, QW] }),
      key: ort.Tensor.fromGpuBuffer(bufs[2], { dataType: 'float32', dims: [1, 1, KW] }),
      value: ort.Tensor.fromGpuBuffer(bufs[3], { dataType: 'float32', dims: [1, 1, KW] }),
      past_key: ort.Tensor.fromGpuBuffer(bufs[0], { dataType: 'float32', dims: [1, KV_HEADS, P, HD] }),
      past_value: ort.Tensor.fromGpuBuffer(bufs[1], { dataType: 'float32', dims: [1, KV_HEADS, P, HD] }),
      seqlens_k: new ort.Tensor('int32', Int32Array.from([L - 1]), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.from([L]), []),
    };
    try {
      const first = await session.run(feeds);
      const perr = compare((await first.output.getData()) as Float32Array, ref).relL2;
      for (const t of Object.values(first)) t.dispose();
      if (!(perr < 1e-4)) {
        log(`ORT GQA decode ctx ${L}: WRONG output (relL2 ${perr.toExponential(2)}) — not timed`);
        out.push({ name: `ORT GQA decode ctx=${L} relL2 (wrong, not timed)`, value: perr, unit: '' });
      } else {
        const tp = await timeWall(async () => {
          const r = await session.run(feeds);
          for (const x of Object.values(r)) x.dispose();
          await gpu.device.queue.onSubmittedWorkDone();
        }, { warmup: 2, iters: 7 });
        const tm = await timeKernel(gpu, run(), { warmup: 2, iters: 7, batch: 1 });
        log(`decode ctx ${L}: ORT GQA ${tp.ms.toFixed(2)} ms (incl. writing present K/V), ours ${tm.ms.toFixed(2)} ms (${defaultVariant}, one submit each)`);
        out.push({ name: `ORT GQA decode ctx=${L} (writes present K/V too)`, value: tp.ms, unit: 'ms' });
        out.push({ name: `attention decode ctx=${L} (default ${defaultVariant}, one submit)`, value: tm.ms, unit: 'ms' });
        out.push({ name: `ORT time ÷ our time, decode ctx=${L}`, value: tp.ms / tm.ms, unit: '×' });
      }
    } finally {
      await session.release();
      bufs.forEach((b) => gpu.allocator.destroy(b));
    }
  } catch (e) {
    log(`ORT GQA decode failed: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const b of [qb, kb, vb, o, scratch]) gpu.allocator.destroy(b);
  return out;
}

/** Cache layout [kvHeads, L, hd] → tokens layout [L, kvHeads·hd] (for the reference). */
function transpose(c: Float32Array, L: number): Float32Array {
  const t = new Float32Array(c.length);
  for (let h = 0; h < KV_HEADS; h++) for (let j = 0; j < L; j++) t.set(c.subarray((h * L + j) * HD, (h * L + j + 1) * HD), j * KW + h * HD);
  return t;
}

export const benches: Bench[] = [
  { name: 'attention prefill vs onnxruntime-web GQA', run: prefillBench },
  { name: 'attention decode vs copy and onnxruntime-web GQA', run: decodeBench },
];
