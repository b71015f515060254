/**
 * Records a sequence of dispatches (a whole forward pass) and submits it as one command buffer.
 * Uniform parameters of all dispatches are packed into one uniform buffer (256-byte aligned slots)
 * written with a single `queue.writeBuffer`, so recording N dispatches costs one upload, not N.
 * With `profile: true` (and `timestamp-query`) every dispatch gets its own pass with timestamp writes.
 */
import { WebVLMError } from '../errors.ts';
import { Usage } from './buffers.ts';
import type { GpuContext } from './context.ts';
import type { BufferBinding } from './bind-groups.ts';

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };
export type UniformValues = ArrayBuffer | ArrayBufferView;

interface DispatchOp {
  kind: 'dispatch';
  pipeline: GPUComputePipeline;
  bindings: Array<Binding | UniformSlot>;
  workgroups: [number, number, number];
  label: string;
}
interface CopyOp {
  kind: 'copy';
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  size: number;
}
type Op = DispatchOp | CopyOp;

/** A slot in the recorder's packed uniform buffer; resolved to a binding at submit. */
export class UniformSlot {
  constructor(
    readonly offset: number,
    readonly size: number,
  ) {}
}

export interface DispatchTiming {
  label: string;
  ms: number;
}

export class Recorder {
  private ops: Op[] = [];
  private uniformData = new Uint8Array(4096);
  private uniformBytes = 0;
  private uniformBuffer: GPUBuffer | null = null;
  private readonly align: number;

  constructor(
    readonly gpu: GpuContext,
    readonly label = 'webvlm',
  ) {
    this.align = Math.max(256, gpu.caps.limits.minUniformBufferOffsetAlignment);
  }

  get dispatchCount(): number {
    return this.ops.filter((o) => o.kind === 'dispatch').length;
  }

  /** Stages uniform values; returns a slot to pass as a binding. */
  uniform(values: UniformValues): UniformSlot {
    const bytes = values instanceof ArrayBuffer ? new Uint8Array(values) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const offset = this.uniformBytes;
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    const end = offset + size;
    if (end > this.uniformData.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.uniformData.byteLength * 2));
      grown.set(this.uniformData.subarray(0, this.uniformBytes));
      this.uniformData = grown;
    }
    this.uniformData.fill(0, offset, end);
    this.uniformData.set(bytes, offset);
    this.uniformBytes = Math.ceil(end / this.align) * this.align;
    return new UniformSlot(offset, size);
  }

  dispatch(pipeline: GPUComputePipeline, bindings: Array<Binding | UniformSlot>, workgroups: number | [number, number?, number?], label = pipeline.label): void {
    const wg = typeof workgroups === 'number' ? [workgroups, 1, 1] : [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1];
    const max = this.gpu.caps.limits.maxComputeWorkgroupsPerDimension;
    for (const n of wg) {
      if (!Number.isInteger(n) || n < 0 || n > max) {
        throw new WebVLMError('InvalidArgument', `${label}: workgroup count ${n} is outside [0, ${max}].`);
      }
    }
    if (wg[0] * wg[1] * wg[2] === 0) return; // empty problem: nothing to do
    this.ops.push({ kind: 'dispatch', pipeline, bindings, workgroups: wg as [number, number, number], label });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.ops.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
  }

  /** Encodes everything recorded into one command buffer and submits it (timed per dispatch while `gpu.profiler` is on). */
  submit(): void {
    const profiler = this.gpu.profiler;
    if (profiler && this.gpu.caps.timestampQuery) {
      profiler.pending.push(this.encodeAndSubmit(true)!.then((t) => void profiler.entries.push(...t)));
    } else {
      this.encodeAndSubmit(false);
    }
  }

  /** Like submit, with one timestamped pass per dispatch; resolves to per-dispatch GPU times. */
  async submitTimed(): Promise<DispatchTiming[]> {
    if (!this.gpu.caps.timestampQuery) {
      throw new WebVLMError('UnsupportedFeature', 'GPU timing needs the timestamp-query feature, which this device lacks.');
    }
    return this.encodeAndSubmit(true) ?? [];
  }

  private uploadUniforms(): GPUBuffer | null {
    if (this.uniformBytes === 0) return null;
    if (!this.uniformBuffer || this.uniformBuffer.size < this.uniformBytes) {
      if (this.uniformBuffer) this.gpu.uniformPool.give(this.uniformBuffer);
      this.uniformBuffer = this.gpu.uniformPool.take(this.uniformBytes, this.label);
    }
    this.gpu.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformData.buffer, 0, this.uniformBytes);
    return this.uniformBuffer;
  }

  private encodeAndSubmit(profile: boolean): Promise<DispatchTiming[]> | undefined {
    const { device } = this.gpu;
    const ub = this.uploadUniforms();
    const ops = this.ops;
    this.ops = [];
    this.uniformBytes = 0;
    const encoder = device.createCommandEncoder({ label: this.label });
    const dispatches = ops.filter((o): o is DispatchOp => o.kind === 'dispatch');
    let querySet: GPUQuerySet | null = null;
    if (profile && dispatches.length) {
      querySet = device.createQuerySet({ type: 'timestamp', count: dispatches.length * 2 });
    }
    let pass: GPUComputePassEncoder | null = null;
    let qi = 0;
    for (const op of ops) {
      if (op.kind === 'copy') {
        pass?.end();
        pass = null;
        encoder.copyBufferToBuffer(op.src, op.srcOffset, op.dst, op.dstOffset, op.size);
        continue;
      }
      if (querySet) {
        pass?.end();
        pass = encoder.beginComputePass({ label: op.label, timestampWrites: { querySet, beginningOfPassWriteIndex: qi, endOfPassWriteIndex: qi + 1 } });
        qi += 2;
      } else if (!pass) {
        pass = encoder.beginComputePass({ label: this.label });
      }
      const resources: BufferBinding[] = op.bindings.map((b) => {
        if (b instanceof UniformSlot) return { buffer: ub!, offset: b.offset, size: b.size };
        // A GPUBuffer has no `buffer` property; a {buffer, offset, size} binding does.
        return 'buffer' in b ? b : { buffer: b };
      });
      const bindGroup = this.gpu.bindGroups.get(op.pipeline, resources, op.label);
      pass.setPipeline(op.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
    }
    pass?.end();
    if (!querySet) {
      device.queue.submit([encoder.finish()]);
      return undefined;
    }
    const n = dispatches.length * 2;
    const resolve = device.createBuffer({ size: n * 8, usage: Usage.QUERY_RESOLVE | Usage.COPY_SRC });
    const read = device.createBuffer({ size: n * 8, usage: Usage.MAP_READ | Usage.COPY_DST });
    encoder.resolveQuerySet(querySet, 0, n, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
    device.queue.submit([encoder.finish()]);
    return read.mapAsync(Usage.MAP_READ).then(() => {
      const t = new BigInt64Array(read.getMappedRange().slice(0));
      read.destroy();
      resolve.destroy();
      querySet!.destroy();
      return dispatches.map((d, i) => ({ label: d.label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    });
  }

  destroy(): void {
    if (this.uniformBuffer) this.gpu.uniformPool.give(this.uniformBuffer);
    this.uniformBuffer = null;
  }
}
