/**
 * Pipeline cache keyed by shader source + name + preprocessor defines + override constants + entry point.
 * Creating a pipeline compiles WGSL, which costs milliseconds; every kernel call goes through here.
 * The source text is part of the key (as a small id per distinct text), so two shaders that share a name
 * cannot share a pipeline; shader modules are keyed by their expanded code (`#include`s resolved against
 * shaders/common/ through src/gpu/shader-chunks.ts, `#if`s applied), which is all a module depends on.
 */
import { WebVLMError } from '../errors.ts';
import { describeLine, expand, type Chunks, type Defines, type SourceLine } from './preprocess.ts';
import { SHADER_CHUNKS } from './shader-chunks.ts';

export interface PipelineSpec {
  /** Stable name of the shader (its file name), used in keys and labels. */
  name: string;
  source: string;
  entryPoint?: string;
  defines?: Defines;
  constants?: Record<string, number>;
}

function stableKey(spec: PipelineSpec): string {
  const d = Object.entries(spec.defines ?? {}).filter(([, v]) => v !== undefined && v !== false).sort(([a], [b]) => (a < b ? -1 : 1));
  const c = Object.entries(spec.constants ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return `${spec.name}|${spec.entryPoint ?? 'main'}|${JSON.stringify(d)}|${JSON.stringify(c)}`;
}

/** Order-sensitive but exact: every define and constant with its value, `undefined`/`false` defines dropped. */
function fastKey(src: number, spec: PipelineSpec): string {
  let k = `${src}|${spec.name}|${spec.entryPoint ?? 'main'}|`;
  if (spec.defines) for (const n in spec.defines) {
    const v = spec.defines[n];
    if (v !== undefined && v !== false) k += `${n}=${v},`;
  }
  k += '|';
  if (spec.constants) for (const n in spec.constants) k += `${n}=${spec.constants[n]},`;
  return k;
}

interface Module {
  module: GPUShaderModule;
  /** Where each line of the compiled code came from (shader or chunk, line). */
  origin: SourceLine[];
}

export class PipelineCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly fast = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<string, Module>();
  // Source text → small id for the keys. A kernel passes the same imported string every call, so the lookup
  // hashes it once (V8 keeps a string's hash) and then compares by identity.
  private readonly sourceIds = new Map<string, number>();

  constructor(
    private readonly device: GPUDevice,
    private readonly chunks: Chunks = SHADER_CHUNKS,
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  get(spec: PipelineSpec): GPUComputePipeline {
    // Every dispatch comes through here (~360 per decode step): a key in the spec's own property order,
    // without sorting or JSON, finds repeat calls; stableKey (≈ 2 µs: 0.8 ms per step on an H100's host)
    // runs only on a miss, so one pipeline still serves specs that list the same defines in another order.
    const src = this.sourceId(spec.source);
    const fast = fastKey(src, spec);
    const hit = this.fast.get(fast);
    if (hit) return hit;
    const label = stableKey(spec);
    const key = `${src}|${label}`;
    let p = this.pipelines.get(key);
    if (p) {
      this.fast.set(fast, p);
      return p;
    }
    const { module } = this.module(spec);
    p = this.device.createComputePipeline({
      label,
      layout: 'auto',
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
    });
    this.pipelines.set(key, p);
    this.fast.set(fast, p);
    return p;
  }

  /**
   * Compiles now and reports WGSL errors as a typed error (tests and device start-up use this); each message
   * names the shader or chunk and its line (`norm:98:3 …`, `common/workgroup_reduce.wgsl:30:5 …`).
   */
  async check(spec: PipelineSpec): Promise<void> {
    const { module, origin } = this.module(spec);
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      const where = (e: GPUCompilationMessage) => (e.lineNum > 0 ? `${describeLine(origin, e.lineNum)}:${e.linePos}` : spec.name);
      throw new WebVLMError('ShaderCompile', `${spec.name}: ${errors.map((e) => `${where(e)} ${e.message}`).join('; ')}`);
    }
  }

  private sourceId(source: string): number {
    let id = this.sourceIds.get(source);
    if (id === undefined) {
      id = this.sourceIds.size;
      this.sourceIds.set(source, id);
    }
    return id;
  }

  /** Preprocesses (throws WebVLMError('ShaderCompile') for a bad directive or an unknown include) and compiles once per distinct code. */
  private module(spec: PipelineSpec): Module {
    const { code, origin } = expand(spec.source, spec.defines ?? {}, { name: spec.name, chunks: this.chunks });
    let m = this.modules.get(code);
    if (!m) {
      m = { module: this.device.createShaderModule({ label: spec.name, code }), origin };
      this.modules.set(code, m);
    }
    return m;
  }
}
