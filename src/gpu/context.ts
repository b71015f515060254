/**
 * The GPU context every kernel receives: device, capabilities, pipeline cache, allocator,
 * and the kernel-variant choices made once for this adapter.
 */
import { WebVLMError } from '../errors.ts';
import { acquireDevice, type AcquireOptions, type GpuCapabilities } from './device.ts';
import { Arena, BufferAllocator } from './buffers.ts';
import { PipelineCache } from './pipelines.ts';
import { Recorder } from './recorder.ts';
import { chooseVariants, type VariantChoice } from './variants.ts';

export class GpuContext {
  readonly pipelines: PipelineCache;
  readonly allocator: BufferAllocator;
  readonly variants: VariantChoice;
  /** Validation/out-of-memory errors the device reported without a scope (tests assert this stays empty). */
  readonly uncapturedErrors: string[] = [];
  lost: GPUDeviceLostInfo | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly caps: GpuCapabilities,
    variants?: Partial<VariantChoice>,
  ) {
    this.pipelines = new PipelineCache(device);
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
    return new GpuContext(device, caps, options.variants);
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

  destroy(): void {
    this.allocator.trim();
    this.device.destroy();
  }
}
