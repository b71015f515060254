/**
 * Puts a checkpoint's tensors on the GPU as they stream in (one tensor in JS memory at a time), following the family's
 * tensor plan: each target is allocated once in its storage (plan.ts `targetStorage`), and each tensor is written at
 * its row offset — so fused q/k/v and gate/up need no waiting for their partners. Linear weights of an 'int4' part are
 * quantized here; an embedding table of an 'int4' part becomes an f16 table (bf16 checkpoint values convert to f16
 * without loss unless below 6e-8 or above 65504: half of f32's bytes, and only gathered rows are read); a tied head is
 * quantized from the embedding tensor, or shares its f32 buffer.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Arena } from '../gpu/buffers.ts';
import { int4Layout, quantizeInt4 } from '../kernels/int4.ts';
import { f32ToF16 } from '../kernels/dtype.ts';
import type { EmbeddingTable } from '../kernels/embedding.ts';
import type { Linear } from './layers.ts';
import { targetStorage, type PlanTarget, type PlannedTensor, type TensorPlan, type WeightFormats } from './plan.ts';

/** The loaded targets, by name: what a family assembles its weights from. */
export class LoadedTargets {
  constructor(private readonly linears: Map<string, Linear>, private readonly plains: Map<string, GPUBuffer>, private readonly tables: Map<string, EmbeddingTable>) {}

  linear(name: string): Linear {
    return this.get(this.linears, name);
  }

  buffer(name: string): GPUBuffer {
    return this.get(this.plains, name);
  }

  embedding(name: string): EmbeddingTable {
    return this.get(this.tables, name);
  }

  private get<T>(m: Map<string, T>, name: string): T {
    const v = m.get(name);
    if (!v) throw new WebVLMError('Internal', `tensor plan: no loaded target ${name}.`);
    return v;
  }
}

export class PlanLoader {
  private readonly byName: Map<string, PlannedTensor>;
  private readonly seen = new Set<string>();
  private readonly linears = new Map<string, Linear>();
  private readonly plains = new Map<string, GPUBuffer>();
  private readonly tables = new Map<string, EmbeddingTable>();
  /** Tied heads by the embedding they are filled from. */
  private readonly tiedFrom = new Map<string, PlanTarget[]>();

  constructor(private readonly gpu: GpuContext, private readonly arena: Arena, private readonly plan: TensorPlan, private readonly formats: WeightFormats) {
    this.byName = new Map(plan.tensors.map((t) => [t.name, t]));
    for (const t of plan.targets.values()) {
      if (t.kind === 'linear' && !t.tiedTo) this.linears.set(t.name, this.allocLinear(t));
      if (t.tiedTo) {
        const list = this.tiedFrom.get(t.tiedTo) ?? [];
        list.push(t);
        this.tiedFrom.set(t.tiedTo, list);
        // A tied head stored as its own int4 copy is allocated now; an f32 one shares the table (filled on arrival).
        if (targetStorage(t, formats) === 'int4') this.linears.set(t.name, this.allocLinear(t));
        else this.linears.set(t.name, { N: t.N, K: t.K });
      }
    }
  }

  /** Names the checkpoint must provide. */
  get expected(): string[] {
    return [...this.byName.keys()];
  }

  /** Takes one tensor (f32 values). Unknown names are an error: the checkpoint is not what config.json says. */
  put(name: string, shape: number[], values: Float32Array): void {
    const spec = this.byName.get(name);
    if (!spec) {
      if (this.plan.tolerated.includes(name)) return;
      throw new WebVLMError('CorruptCheckpoint', `Unexpected tensor ${name} for this config.`);
    }
    if (this.seen.has(name)) throw new WebVLMError('CorruptCheckpoint', `Tensor ${name} appears twice.`);
    if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
      throw new WebVLMError('CorruptCheckpoint', `Tensor ${name} has shape [${shape}], config.json implies [${spec.shape}].`);
    }
    this.seen.add(name);
    const target = this.plan.targets.get(spec.target)!;
    if (target.kind === 'plain') {
      const b = this.arena.buffer(values.byteLength, undefined, name);
      this.write(b, 0, values);
      this.plains.set(target.name, b);
    } else if (target.kind === 'embedding') {
      this.putEmbedding(target, values);
    } else {
      this.putRows(this.linears.get(target.name)!, spec, values);
    }
  }

  /** After the last tensor: every planned tensor must have arrived. */
  finish(): LoadedTargets {
    const missing = this.expected.filter((n) => !this.seen.has(n));
    if (missing.length) {
      throw new WebVLMError('CorruptCheckpoint', `The checkpoint lacks ${missing.length} tensor(s) config.json implies, e.g. ${missing.slice(0, 3).join(', ')}.`);
    }
    return new LoadedTargets(this.linears, this.plains, this.tables);
  }

  private write(b: GPUBuffer, offset: number, v: ArrayBufferView): void {
    this.gpu.device.queue.writeBuffer(b, offset, v.buffer as ArrayBuffer, v.byteOffset, v.byteLength);
  }

  private putRows(lin: Linear, spec: PlannedTensor, values: Float32Array): void {
    if (spec.isBias) return this.write(lin.bias!, spec.row0 * 4, values);
    const rows = spec.shape[0];
    const K = values.length / rows;
    if (lin.int4) {
      const q = quantizeInt4(values, rows, K, { group: lin.int4.group, scaleType: lin.int4.scaleType });
      const l = int4Layout(lin.int4);
      this.write(lin.int4.packed as GPUBuffer, spec.row0 * l.blocks * 16, q.packed);
      this.write(lin.int4.scales as GPUBuffer, spec.row0 * l.scaleStride * 4, q.scales);
    } else {
      this.write(lin.f32!, spec.row0 * K * 4, values);
    }
  }

  private putEmbedding(t: PlanTarget, values: Float32Array): void {
    const V = t.N, D = t.K;
    if (targetStorage(t, this.formats) === 'f16') {
      const bits = f32ToF16(values);
      const data = this.arena.buffer(bits.byteLength, undefined, `${t.name}/f16`);
      this.write(data, 0, bits);
      this.tables.set(t.name, { dtype: 'f16', data, V, D });
    } else {
      const data = this.arena.buffer(values.byteLength, undefined, `${t.name}/f32`);
      this.write(data, 0, values);
      this.tables.set(t.name, { dtype: 'f32', data, V, D });
    }
    for (const head of this.tiedFrom.get(t.name) ?? []) {
      const lin = this.linears.get(head.name)!;
      if (lin.int4) this.putRows(lin, { name: head.name, shape: [V, D], role: 'linear', target: head.name, row0: 0, isBias: false }, values);
      else lin.f32 = (this.tables.get(t.name) as { data: GPUBuffer }).data;
    }
  }

  private allocLinear(t: PlanTarget): Linear {
    const lin: Linear = { N: t.N, K: t.K };
    if (targetStorage(t, this.formats) === 'int4') {
      const shape = { N: t.N, K: t.K, group: 32 as const, scaleType: 'f16' as const };
      const l = int4Layout(shape);
      lin.int4 = { ...shape, packed: this.arena.buffer(l.packedWords * 4, undefined, 'int4/packed'), scales: this.arena.buffer(l.scaleWords * 4, undefined, 'int4/scales') };
    } else {
      lin.f32 = this.arena.buffer(t.N * t.K * 4, undefined, 'f32/weight');
    }
    if (t.bias) lin.bias = this.arena.buffer(t.N * 4, undefined, 'bias');
    return lin;
  }
}
