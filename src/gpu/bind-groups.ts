/**
 * Reuse of bind groups and uniform buffers across submits. A decode step records the same ~360 dispatches
 * over the same buffers every token; creating their bind groups anew cost more CPU time than the whole
 * step's GPU work on an H100 (Dawn validates and allocates each one). Entries are keyed by the identity of
 * every bound buffer plus offset and size, so a hit binds exactly what a fresh group would. Uniform values
 * change per step but live in the buffer's contents, not in the group; recorders take their uniform buffer
 * from a small pool so that the next step binds the same buffer at the same offsets.
 */
import { Usage } from './buffers.ts';

let nextId = 1;
const ids = new WeakMap<object, number>();
const idOf = (o: object): number => {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, (id = nextId++));
  return id;
};

export interface BufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export class BindGroupCache {
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  hits = 0;
  misses = 0;

  /** `capacity` bounds memory: oldest-used groups go first (a Map keeps insertion order; hits re-insert). */
  constructor(
    private readonly device: GPUDevice,
    private readonly capacity = 4096,
  ) {}

  get size(): number {
    return this.groups.size;
  }

  get(pipeline: GPUComputePipeline, bindings: BufferBinding[], label?: string): GPUBindGroup {
    let key = String(idOf(pipeline));
    for (const b of bindings) key += `|${idOf(b.buffer)}:${b.offset ?? ''}:${b.size ?? ''}`;
    const hit = this.groups.get(key);
    if (hit) {
      this.hits++;
      this.groups.delete(key);
      this.groups.set(key, hit);
      return hit;
    }
    this.misses++;
    let layout = this.layouts.get(pipeline);
    if (!layout) this.layouts.set(pipeline, (layout = pipeline.getBindGroupLayout(0)));
    const group = this.device.createBindGroup({ label, layout, entries: bindings.map((resource, binding) => ({ binding, resource })) });
    this.groups.set(key, group);
    if (this.groups.size > this.capacity) this.groups.delete(this.groups.keys().next().value!);
    return group;
  }
}

/**
 * Uniform buffers lent to recorders. A recorder keeps its buffer until destroyed, so two live recorders never
 * share one; reuse afterwards is safe because `queue.writeBuffer` is ordered after all earlier submits.
 */
export class UniformPool {
  private readonly free: GPUBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly keep = 4,
  ) {}

  take(bytes: number, label: string): GPUBuffer {
    for (let i = this.free.length - 1; i >= 0; i--) if (this.free[i].size >= bytes) return this.free.splice(i, 1)[0];
    return this.device.createBuffer({ label: `${label}/uniforms`, size: Math.ceil(bytes / 4096) * 4096, usage: Usage.UNIFORM | Usage.COPY_DST });
  }

  give(buffer: GPUBuffer): void {
    this.free.push(buffer);
    if (this.free.length > this.keep) this.free.shift()!.destroy();
  }
}
