/**
 * Pipeline cache keyed by shader name + preprocessor defines + override constants + entry point.
 * Creating a pipeline compiles WGSL, which costs milliseconds; every kernel call goes through here.
 */
import { WebVLMError } from '../errors.ts';
import { preprocess, type Defines } from './preprocess.ts';

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

export class PipelineCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly modules = new Map<string, GPUShaderModule>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.pipelines.size;
  }

  get(spec: PipelineSpec): GPUComputePipeline {
    const key = stableKey(spec);
    let p = this.pipelines.get(key);
    if (p) return p;
    const module = this.module(spec);
    p = this.device.createComputePipeline({
      label: key,
      layout: 'auto',
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
    });
    this.pipelines.set(key, p);
    return p;
  }

  /** Compiles now and reports WGSL errors as a typed error (tests and device start-up use this). */
  async check(spec: PipelineSpec): Promise<void> {
    const module = this.module(spec);
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      throw new WebVLMError('ShaderCompile', `${spec.name}: ${errors.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('; ')}`);
    }
  }

  private module(spec: PipelineSpec): GPUShaderModule {
    const d = Object.entries(spec.defines ?? {}).filter(([, v]) => v !== undefined && v !== false).sort(([a], [b]) => (a < b ? -1 : 1));
    const mkey = `${spec.name}|${JSON.stringify(d)}`;
    let m = this.modules.get(mkey);
    if (!m) {
      m = this.device.createShaderModule({ label: spec.name, code: preprocess(spec.source, spec.defines ?? {}) });
      this.modules.set(mkey, m);
    }
    return m;
  }
}
