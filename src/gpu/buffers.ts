/**
 * GPU buffers with explicit lifetimes.
 * - `BufferPool` recycles transient buffers by (usage, size class) so a forward pass does not
 *   create and destroy hundreds of buffers per token.
 * - `Arena` groups buffers that die together (a model's weights, a request's activations):
 *   `arena.destroy()` returns them all at once.
 * Every allocation is counted so the engine can report GPU memory in use.
 */
import { WebVLMError } from '../errors.ts';

/** GPUBufferUsage flags as constants, so importing this module does not need the WebGPU globals (Node sets them up late). */
export const Usage = { MAP_READ: 0x1, MAP_WRITE: 0x2, COPY_SRC: 0x4, COPY_DST: 0x8, INDEX: 0x10, VERTEX: 0x20, UNIFORM: 0x40, STORAGE: 0x80, INDIRECT: 0x100, QUERY_RESOLVE: 0x200 } as const;
/** The usage of every tensor buffer: bindable as storage, copyable both ways. */
export const TENSOR_USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

export class BufferAllocator {
  bytesInUse = 0;
  peakBytes = 0;
  private readonly free = new Map<string, GPUBuffer[]>();

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  /** A fresh buffer of exactly `size` bytes (rounded up to 4). */
  create(size: number, usage: number = TENSOR_USAGE, label?: string): GPUBuffer {
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    if (bytes > this.maxBufferSize) {
      throw new WebVLMError('OutOfMemory', `A ${label ?? 'buffer'} of ${bytes} bytes exceeds this adapter's maxBufferSize (${this.maxBufferSize}).`, {
        details: { bytes, maxBufferSize: this.maxBufferSize },
      });
    }
    const buffer = this.device.createBuffer({ size: bytes, usage, label });
    this.bytesInUse += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.bytesInUse);
    return buffer;
  }

  destroy(buffer: GPUBuffer): void {
    this.bytesInUse -= buffer.size;
    buffer.destroy();
  }

  /** A pooled buffer of at least `size` bytes; give it back with `recycle`. */
  acquire(size: number, usage: number = TENSOR_USAGE, label?: string): GPUBuffer {
    const cls = sizeClass(size);
    const list = this.free.get(`${usage}:${cls}`);
    const b = list?.pop();
    return b ?? this.create(cls, usage, label);
  }

  recycle(buffer: GPUBuffer): void {
    const key = `${buffer.usage}:${buffer.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.destroy(b);
    this.free.clear();
  }
}

/** Size classes: powers of two up to 1 MiB, then 1 MiB steps (bounded waste, few classes). */
export function sizeClass(size: number): number {
  const s = Math.max(256, Math.ceil(size));
  if (s <= 1 << 20) return 2 ** Math.ceil(Math.log2(s));
  return Math.ceil(s / (1 << 20)) * (1 << 20);
}

export class Arena {
  private readonly buffers: GPUBuffer[] = [];
  private destroyed = false;

  constructor(private readonly allocator: BufferAllocator, readonly name: string) {}

  buffer(size: number, usage: number = TENSOR_USAGE, label?: string): GPUBuffer {
    if (this.destroyed) throw new WebVLMError('Disposed', `Arena ${this.name} was destroyed.`);
    const b = this.allocator.create(size, usage, label ? `${this.name}/${label}` : this.name);
    this.buffers.push(b);
    return b;
  }

  get bytes(): number {
    return this.buffers.reduce((s, b) => s + b.size, 0);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.buffers) this.allocator.destroy(b);
    this.buffers.length = 0;
  }
}
