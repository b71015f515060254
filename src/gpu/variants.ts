/**
 * Which kernel variant runs on which adapter, decided once at device start.
 * On GPUs, workgroup-cooperative kernels (coalesced loads, subgroup/shared-memory reductions, tiles staged
 * through workgroup memory) win; on CPU adapters (SwiftShader, llvmpipe) kernels without barriers win,
 * because a CPU adapter runs a workgroup's barrier by switching through every SIMD group of it (64 of them
 * for 256 invocations on SwiftShader's 4 lanes): one row per invocation for GEMV and norms (GEMV 2.5–5×,
 * LayerNorm over encoder rows 10–100×), a 4×4 register block per invocation for f32 matmul and the patch
 * embedding (2–8×); measured in ../shared/webgpu-on-cpu.md and bench/ops.bench.ts. Tests run every variant
 * regardless of this choice.
 *
 * Which adapters are CPU adapters: `caps.software` from the adapter's name (device.ts). Adapters that do
 * not name themselves (Chromium's compat adapter on ANGLE GL over llvmpipe reports an empty
 * `adapter.info`) get a start-up probe, `probeSoftwareAdapter`: it times a kernel with workgroup barriers
 * against the same arithmetic without them (shaders/adapter_probe.wgsl), i.e. it measures the very cost
 * that separates the variants: a few to ~20 ms on a CPU adapter, under 1 ms on a GPU (plus compiling two tiny
 * pipelines), once per device. If the probe fails, `guessSoftware` decides from the feature level instead.
 */
import probeSource from '../../shaders/adapter_probe.wgsl?raw';
import { Usage } from './buffers.ts';
import type { GpuCapabilities } from './device.ts';

export interface VariantChoice {
  /** GEMV / decode matmul: cooperative workgroup reduction vs one output row per invocation. */
  gemv: 'workgroup' | 'row';
  /** RMSNorm / LayerNorm: one workgroup per row (subgroup or tree reduction) vs one row per invocation. */
  norm: 'workgroup' | 'row';
  /** f32 matmul and patch embedding: 64×64 tiles staged through workgroup memory vs per-invocation register tiles. */
  matmul: 'tiled' | 'register';
  /** Use subgroup operations where a kernel has them. */
  subgroups: boolean;
  /** Use f16 storage/arithmetic variants where a kernel has them (accumulation stays f32). */
  f16: boolean;
}

export function chooseVariants(caps: GpuCapabilities): VariantChoice {
  const cpu = caps.software;
  return {
    gemv: cpu ? 'row' : 'workgroup',
    norm: cpu ? 'row' : 'workgroup',
    matmul: cpu ? 'register' : 'tiled',
    // Kernels written for subgroups assume a subgroup of at least 4 lanes and read the real size at run time.
    subgroups: caps.subgroups && caps.subgroupMinSize >= 4,
    f16: caps.f16,
  };
}

/** True when the adapter gave no name at all, so `caps.software` (a name match) cannot be trusted either way. */
export function adapterIsAnonymous(caps: GpuCapabilities): boolean {
  const a = caps.adapter;
  return !caps.software && !a.vendor && !a.architecture && !a.device && !a.description;
}

/**
 * Fallback when the probe cannot run: an anonymous compatibility-mode adapter without subgroups is taken
 * for a CPU adapter (real GPUs in compat mode, e.g. D3D11 or GLES ones, name their vendor).
 */
export function guessSoftware(caps: GpuCapabilities): boolean {
  return caps.software || (adapterIsAnonymous(caps) && caps.featureLevel === 'compatibility' && !caps.subgroups);
}

export interface ProbeResult {
  software: boolean;
  /** Wall-clock ms of the barrier kernel and of the barrier-free one (best of the runs). */
  barrierMs: number;
  plainMs: number;
  /** Total time the probe took, compilation included. */
  totalMs: number;
}

/** Extra wall-clock ms the barrier kernel must cost over the plain one to call the adapter a CPU. */
const PROBE_THRESHOLD_MS = 1;
/**
 * 16 workgroups × 256 invocations × 32 steps (64 barriers each). Measured in tests/gpu/variants.test.ts and
 * bench/ops.bench.ts on a loaded 2-core machine: llvmpipe (compat) 10–40 ms with barriers vs ~1 ms plain
 * at 64 steps, so ~5–20 ms at 32; SwiftShader ~60× more (it names itself, so it is never probed at
 * start-up); a GPU runs both in microseconds, under the wall clock's noise. Compiling the two pipelines
 * costs more than running them (~40 ms warm; the very first compile on a cold GPU process ~0.9 s, a cost
 * the model's first kernel would otherwise pay).
 */
const PROBE_WORKGROUPS = 16;
const PROBE_ITERS = 32;
const PROBE_MAX_PAIRS = 3;

/**
 * Times shaders/adapter_probe.wgsl's two kernels (after a one-step warm-up launch of each) in alternating
 * pairs and calls the adapter a CPU one when the barriers cost more than PROBE_THRESHOLD_MS. Wall clock
 * around onSubmittedWorkDone (the adapters that need the probe lack timestamp queries); a loaded machine
 * only adds delay, so the best of up to three pairs counts. It stops early when the answer is clear: a
 * barrier launch under the threshold in total is a GPU, a gap over 3× the threshold a CPU.
 */
export async function probeSoftwareAdapter(device: GPUDevice): Promise<ProbeResult> {
  const t0 = performance.now();
  const module = device.createShaderModule({ label: 'adapter_probe', code: probeSource });
  const [barrier, plain] = await Promise.all(
    ['barriers', 'plain'].map((entryPoint) => device.createComputePipelineAsync({ label: `adapter_probe/${entryPoint}`, layout: 'auto', compute: { module, entryPoint } })),
  );
  const out = device.createBuffer({ label: 'adapter_probe/out', size: PROBE_WORKGROUPS * 256 * 4, usage: Usage.STORAGE });
  // Two uniform slots (256-byte aligned): 1 step for the warm-up launches, PROBE_ITERS for the timed ones.
  const params = device.createBuffer({ label: 'adapter_probe/params', size: 512, usage: Usage.UNIFORM | Usage.COPY_DST });
  const u = new ArrayBuffer(512);
  new Uint32Array(u, 0, 1)[0] = 1;
  new Uint32Array(u, 256, 1)[0] = PROBE_ITERS;
  device.queue.writeBuffer(params, 0, u);
  const run = async (pipeline: GPUComputePipeline, warmUp = false): Promise<number> => {
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: out } }, { binding: 1, resource: { buffer: params, offset: warmUp ? 0 : 256, size: 16 } }],
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(PROBE_WORKGROUPS);
    pass.end();
    const start = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - start;
  };
  try {
    await run(plain, true); // warm-up: first launches pay for lazy driver work (GL links programs at first use)
    await run(barrier, true);
    let plainMs = Infinity, barrierMs = Infinity;
    for (let i = 0; i < PROBE_MAX_PAIRS; i++) {
      plainMs = Math.min(plainMs, await run(plain));
      barrierMs = Math.min(barrierMs, await run(barrier));
      if (barrierMs < PROBE_THRESHOLD_MS || barrierMs - plainMs > 3 * PROBE_THRESHOLD_MS) break;
    }
    return { software: barrierMs - plainMs > PROBE_THRESHOLD_MS, barrierMs, plainMs, totalMs: performance.now() - t0 };
  } finally {
    out.destroy();
    params.destroy();
  }
}
