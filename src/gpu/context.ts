/**
 * The GPU context every kernel receives: device, capabilities, pipeline cache, allocator,
 * and the kernel-variant choices made once for this adapter.
 */
import { WebVLMError } from '../errors.ts';
import { acquireDevice, type AcquireOptions, type GpuCapabilities } from './device.ts';
import { Arena, BufferAllocator } from './buffers.ts';
import { PipelineCache } from './pipelines.ts';
import { BindGroupCache, UniformPool } from './bind-groups.ts';
import { Recorder, type DispatchTiming } from './recorder.ts';
import { adapterIsAnonymous, chooseVariants, guessSoftware, probeSoftwareAdapter, type ProbeResult, type VariantChoice } from './variants.ts';

export class GpuContext {
  readonly pipelines: PipelineCache;
  readonly allocator: BufferAllocator;
  /** Bind groups and uniform buffers reused across submits (see bind-groups.ts). */
  readonly bindGroups: BindGroupCache;
  readonly uniformPool: UniformPool;
  readonly variants: VariantChoice;
  /** Validation/out-of-memory errors the device reported without a scope (tests assert this stays empty). */
  readonly uncapturedErrors: string[] = [];
  lost: GPUDeviceLostInfo | null = null;
  /** When set, every recorder submit is timed per dispatch (timestamp queries); see `profile()`. */
  profiler: { entries: DispatchTiming[]; pending: Promise<void>[] } | null = null;
  /** Set when the adapter did not name itself and a start-up probe decided `caps.software` (see variants.ts). */
  softwareProbe: ProbeResult | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly caps: GpuCapabilities,
    variants?: Partial<VariantChoice>,
  ) {
    this.pipelines = new PipelineCache(device);
    this.bindGroups = new BindGroupCache(device);
    this.uniformPool = new UniformPool(device);
    this.allocator = new BufferAllocator(device, Math.min(caps.limits.maxBufferSize, caps.limits.maxStorageBufferBindingSize));
    this.variants = { ...chooseVariants(caps), ...variants };
    device.addEventListener?.('uncapturederror', (ev: Event) => {
      this.uncapturedErrors.push((ev as GPUUncapturedErrorEvent).error?.message ?? String(ev));
    });
    void device.lost.then((info) => {
      this.lost = info;
    });
  }

  static async create(options: AcquireOptions & { variants?: Partial<VariantChoice> } = {}): Promise<GpuContext> {
    const { device, caps } = await acquireDevice(options);
    // An adapter with an empty adapter.info (Chromium's compat adapter on llvmpipe) cannot be told from a
    // GPU by name: measure what a workgroup barrier costs on it (a few ms, once).
    let probe: ProbeResult | null = null;
    if (adapterIsAnonymous(caps)) {
      try {
        probe = await probeSoftwareAdapter(device);
        caps.software = probe.software;
      } catch {
        caps.software = guessSoftware(caps);
      }
    }
    const ctx = new GpuContext(device, caps, options.variants);
    ctx.softwareProbe = probe;
    return ctx;
  }

  recorder(label?: string): Recorder {
    this.assertAlive();
    return new Recorder(this, label);
  }

  arena(name: string): Arena {
    return new Arena(this.allocator, name);
  }

  assertAlive(): void {
    if (this.lost) throw new WebVLMError('DeviceLost', `The GPU device was lost (${this.lost.reason}: ${this.lost.message}).`);
  }

  /** Waits until all submitted work has finished. */
  async sync(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Runs `fn` with per-dispatch GPU timing; returns its result and the time per dispatch label prefix. */
  async profile<T>(fn: () => Promise<T>): Promise<{ result: T; byKernel: Array<{ kernel: string; ms: number; count: number }> }> {
    this.profiler = { entries: [], pending: [] };
    try {
      const result = await fn();
      await Promise.all(this.profiler.pending);
      const agg = new Map<string, { ms: number; count: number }>();
      for (const e of this.profiler.entries) {
        const k = e.label.split(' ')[0];
        const a = agg.get(k) ?? { ms: 0, count: 0 };
        a.ms += e.ms;
        a.count++;
        agg.set(k, a);
      }
      return { result, byKernel: [...agg].map(([kernel, a]) => ({ kernel, ...a })).sort((x, y) => y.ms - x.ms) };
    } finally {
      this.profiler = null;
    }
  }

  destroy(): void {
    this.allocator.trim();
    this.device.destroy();
  }
}
