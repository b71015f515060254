/**
 * A family's tensor plan: every tensor of its checkpoint (name, shape from the config, role), the GPU buffer it goes
 * to (its *target*: fused q/k/v or gate/up targets take several tensors at row offsets) and which part of the model
 * it belongs to. One plan per family and config; the checkpoint check (`PlanChecker`), the weight loader
 * (`plan-loader.ts`) and the memory estimate (`planBytes`) all read it, so no second list of tensors exists.
 *
 * Storage is decided per target from the user's per-part choice (`WeightFormats`): a quantizable linear target of a
 * part in 'int4' is int4 (4-bit, groups of 32, f16 scales); an embedding table of an 'int4' part is an f16 table;
 * everything else (norms, biases, position tables, the patch embedding) is f32.
 */
import { WebVLMError } from '../errors.ts';
import type { WeightFormat } from '../types.ts';

/** What a tensor is, so generators can initialise it sensibly. */
export type TensorRole = 'linear' | 'bias' | 'norm' | 'norm_bias' | 'embedding' | 'conv';

/** The parts a user picks a weight format for. */
export type WeightPart = 'vision' | 'text';
export type { WeightFormat };
export type WeightFormats = Record<WeightPart, WeightFormat>;
/** What `EngineOptions.weights` takes: one format for every part, or one per part. */
export type WeightsOption = WeightFormat | Partial<WeightFormats>;

export function weightFormats(w: WeightsOption | undefined): WeightFormats {
  if (w === undefined || typeof w === 'string') return { vision: w ?? 'int4', text: w ?? 'int4' };
  return { vision: w.vision ?? 'int4', text: w.text ?? 'int4' };
}

/** The formats as one label: 'int4', 'f32', or 'vision f32 / text int4'. */
export function formatsLabel(f: WeightFormats): string {
  return f.vision === f.text ? f.vision : `vision ${f.vision} / text ${f.text}`;
}

export interface TensorSpec {
  name: string;
  shape: number[];
  role: TensorRole;
}

export type TargetKind = 'linear' | 'plain' | 'embedding';

export interface PlanTarget {
  name: string;
  kind: TargetKind;
  part: WeightPart;
  /** linear: [N, K] in nn.Linear layout (rows, columns); plain: elements in N (K = 1); embedding: [vocab, dim]. */
  N: number;
  K: number;
  /** linear: has a bias buffer [N]. */
  bias: boolean;
  /** linear: may be int4 (false: the patch embedding, the first layer, stays f32). */
  quantizable: boolean;
  /** A linear target filled from an embedding tensor (a tied lm_head). */
  tiedTo?: string;
}

export interface PlannedTensor extends TensorSpec {
  target: string;
  /** First row of the target this tensor fills (fused targets); 0 otherwise. */
  row0: number;
  /** Fills the target's bias rather than its weight. */
  isBias: boolean;
}

export interface TensorPlan {
  tensors: PlannedTensor[];
  targets: Map<string, PlanTarget>;
  /** Names a checkpoint may hold that are not read (e.g. a tied lm_head saved anyway). */
  tolerated: string[];
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Builds a plan: declare targets, then the tensors that fill them. */
export class PlanBuilder {
  readonly plan: TensorPlan = { tensors: [], targets: new Map(), tolerated: [] };

  /** A linear target [N, K] (+ bias). */
  linear(name: string, part: WeightPart, N: number, K: number, o: { bias?: boolean; quantizable?: boolean } = {}): string {
    this.target({ name, kind: 'linear', part, N, K, bias: o.bias ?? false, quantizable: o.quantizable ?? true });
    return name;
  }

  /** `prefix.weight` (shape, its first dim = rows) into `target` at `row0`, and `prefix.bias` [rows] if the target has one. */
  rows(target: string, prefix: string, row0: number, shape: number[], role: TensorRole = 'linear'): void {
    const t = this.plan.targets.get(target)!;
    this.plan.tensors.push({ name: `${prefix}.weight`, shape, role, target, row0, isBias: false });
    if (t.bias) this.plan.tensors.push({ name: `${prefix}.bias`, shape: [shape[0]], role: 'bias', target, row0, isBias: true });
  }

  /** A whole linear layer `prefix.weight` [N, K] (+ bias) as its own target. */
  layer(prefix: string, part: WeightPart, N: number, K: number, o: { bias?: boolean; quantizable?: boolean } = {}): string {
    const name = `${prefix}.weight`;
    this.linear(name, part, N, K, o);
    this.rows(name, prefix, 0, [N, K]);
    return name;
  }

  /** A tensor that is its own f32 buffer (norms, biases, position tables). */
  plain(name: string, part: WeightPart, shape: number[], role: TensorRole): string {
    this.target({ name, kind: 'plain', part, N: numel(shape), K: 1, bias: false, quantizable: false });
    this.plan.tensors.push({ name, shape, role, target: name, row0: 0, isBias: false });
    return name;
  }

  /** A token table [vocab, dim]. */
  embedding(name: string, part: WeightPart, vocab: number, dim: number): string {
    this.target({ name, kind: 'embedding', part, N: vocab, K: dim, bias: false, quantizable: true });
    this.plan.tensors.push({ name, shape: [vocab, dim], role: 'embedding', target: name, row0: 0, isBias: false });
    return name;
  }

  /** A linear target filled from the embedding `from` (tied lm_head); `savedAs` may appear in the checkpoint, unread. */
  tied(name: string, from: string, savedAs?: string): string {
    const e = this.plan.targets.get(from)!;
    this.target({ name, kind: 'linear', part: e.part, N: e.N, K: e.K, bias: false, quantizable: true, tiedTo: from });
    if (savedAs) this.plan.tolerated.push(savedAs);
    return name;
  }

  private target(t: PlanTarget): void {
    if (this.plan.targets.has(t.name)) throw new WebVLMError('Internal', `tensor plan: target ${t.name} declared twice.`);
    this.plan.targets.set(t.name, t);
  }
}

/** The storage of a target under `formats`. A tied head in f32 shares its embedding's buffer ('shared'). */
export function targetStorage(t: PlanTarget, formats: WeightFormats): 'int4' | 'f16' | 'f32' | 'shared' {
  const int4 = formats[t.part] === 'int4';
  if (t.kind === 'embedding') return int4 ? 'f16' : 'f32';
  if (t.kind === 'linear') {
    if (t.tiedTo && !int4) return 'shared';
    return int4 && t.quantizable ? 'int4' : 'f32';
  }
  return 'f32';
}

/** int4 bytes of an [N, K] matrix: packed nibbles in 16-byte blocks of 32, and f16 scales per group of 32 (two per word). */
export function int4Bytes(N: number, K: number): { packed: number; scales: number } {
  const blocks = Math.ceil(K / 32);
  return { packed: N * blocks * 16, scales: N * Math.ceil(blocks / 2) * 4 };
}

/** GPU bytes of the plan's weights under `formats`, and each buffer's size (what the loader allocates). */
export function planBytes(plan: TensorPlan, formats: WeightFormats): { total: number; buffers: Map<string, number> } {
  const buffers = new Map<string, number>();
  let total = 0;
  const add = (what: string, bytes: number) => {
    buffers.set(what, bytes);
    total += bytes;
  };
  for (const t of plan.targets.values()) {
    const s = targetStorage(t, formats);
    if (s === 'shared') continue;
    if (s === 'int4') {
      const b = int4Bytes(t.N, t.K);
      add(`${t.name} (int4 packed)`, b.packed);
      add(`${t.name} (int4 scales)`, b.scales);
    } else {
      add(`${t.name} (${s})`, t.N * t.K * (s === 'f16' ? 2 : 4));
    }
    if (t.kind === 'linear' && t.bias) add(`${t.name} (bias)`, t.N * 4);
  }
  return { total, buffers };
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks tensors (one file's header, or all shards' so far) against the plan: every name known with the expected
 * shape. With `complete`, every planned tensor must also have been seen. Throws `CorruptCheckpoint`: the weights are
 * not what config.json says they are.
 */
export class PlanChecker {
  private readonly specs: Map<string, TensorSpec>;
  private readonly seen = new Set<string>();
  private readonly tolerated: readonly string[];

  constructor(plan: Pick<TensorPlan, 'tensors' | 'tolerated'>) {
    this.specs = new Map(plan.tensors.map((s) => [s.name, s]));
    this.tolerated = plan.tolerated;
  }

  check(file: string, tensors: readonly { name: string; shape: readonly number[] }[]): void {
    for (const t of tensors) {
      const spec = this.specs.get(t.name);
      if (!spec) {
        if (this.tolerated.includes(t.name)) continue;
        throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} is not part of the model config.json describes.`, { details: { file, tensor: t.name } });
      }
      if (this.seen.has(t.name)) throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} appears twice in the checkpoint.`, { details: { file, tensor: t.name } });
      if (spec.shape.length !== t.shape.length || spec.shape.some((d, i) => d !== t.shape[i])) {
        throw new WebVLMError('CorruptCheckpoint', `${file}: tensor ${t.name} has shape ${shapeText(t.shape)}, config.json implies ${shapeText(spec.shape)}.`, {
          details: { file, tensor: t.name, shape: t.shape, expected: spec.shape },
        });
      }
      this.seen.add(t.name);
    }
  }

  checkHeader(file: string, header: { tensors: readonly { name: string; shape: readonly number[] }[] }): void {
    this.check(file, header.tensors);
  }

  /** Names of planned tensors not seen yet. */
  missing(): string[] {
    return [...this.specs.keys()].filter((n) => !this.seen.has(n));
  }

  /** Fails now if the checkpoint's full name list (an index's weight_map, a single file's header) lacks a planned tensor. */
  requireNames(where: string, names: ReadonlySet<string>): void {
    this.reportMissing(where, [...this.specs.keys()].filter((n) => !names.has(n)));
  }

  requireComplete(where: string): void {
    this.reportMissing(where, this.missing());
  }

  private reportMissing(where: string, missing: string[]): void {
    if (missing.length) {
      throw new WebVLMError('CorruptCheckpoint', `${where}: ${missing.length} tensor(s) missing, e.g. ${missing.slice(0, 3).join(', ')}.`, {
        details: { missing: missing.slice(0, 20), count: missing.length },
      });
    }
  }
}

/**
 * config.json against the whole checkpoint's headers (every file, read before any data), so nothing is sized or
 * allocated from numbers the tensors do not back. `layers`: the config's layer count (a count no header can back is
 * refused before the plan is built from it: a 2³¹-layer config would exhaust memory). `indexNames`: a sharded checkpoint's weight_map names, checked first.
 */
export function checkHeadersAgainstPlan(
  makePlan: () => TensorPlan, layers: number,
  files: readonly { file: string; header: { tensors: readonly { name: string; shape: readonly number[] }[] } }[], indexNames?: ReadonlySet<string>,
): void {
  const count = files.reduce((n, f) => n + f.header.tensors.length, 0);
  if (layers > count) {
    throw new WebVLMError('CorruptCheckpoint', `config.json describes ${layers} layers, but the safetensors header(s) hold only ${count} tensors.`, {
      details: { layers, tensors: count },
    });
  }
  const checker = new PlanChecker(makePlan());
  if (indexNames) checker.requireNames('model.safetensors.index.json', indexNames);
  for (const f of files) checker.check(f.file, f.header.tensors);
  checker.requireNames(files.length === 1 ? files[0].file : 'checkpoint', new Set(files.flatMap((f) => f.header.tensors.map((t) => t.name))));
}
