/**
 * Adapter and device acquisition. Asks for the adapter's real limits (the WebGPU defaults — 128 MiB
 * bindings, 16 KiB workgroup memory, 8 storage buffers — are too small for LLM kernels) and for the
 * optional features that pick faster kernel variants: `shader-f16`, `subgroups`, `timestamp-query`.
 */
import { WebVLMError } from '../errors.ts';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface GpuCapabilities {
  adapter: AdapterSummary;
  featureLevel: 'core' | 'compatibility';
  /** True for CPU/software adapters (SwiftShader, llvmpipe, lavapipe, WARP). */
  software: boolean;
  f16: boolean;
  subgroups: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  timestampQuery: boolean;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
    minUniformBufferOffsetAlignment: number;
    minStorageBufferOffsetAlignment: number;
  };
  features: string[];
}

export interface AcquireOptions {
  /** The `navigator.gpu` to use (Node/Dawn passes its own). */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** 'auto' (default): core first, then a compatibility adapter. */
  featureLevel?: 'auto' | 'core' | 'compatibility';
  /** Optional features not to request even when offered (to test fallbacks). */
  disableFeatures?: Array<'shader-f16' | 'subgroups' | 'timestamp-query'>;
}

export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  caps: GpuCapabilities;
}

const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|warp|microsoft basic render|cpu/i;

function summarize(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
}

async function requestAdapter(gpu: GPU, options: AcquireOptions): Promise<{ adapter: GPUAdapter; level: 'core' | 'compatibility' } | null> {
  const level = options.featureLevel ?? 'auto';
  const tryLevel = async (featureLevel: 'core' | 'compatibility') => {
    try {
      const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference, featureLevel } as GPURequestAdapterOptions);
      return adapter ? { adapter, level: featureLevel } : null;
    } catch {
      return null;
    }
  };
  if (level === 'core') return tryLevel('core');
  if (level === 'compatibility') return tryLevel('compatibility');
  return (await tryLevel('core')) ?? (await tryLevel('compatibility'));
}

export async function acquireDevice(options: AcquireOptions = {}): Promise<AcquiredDevice> {
  const gpu = options.gpu ?? (typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: GPU }).gpu : undefined);
  if (!gpu) {
    throw new WebVLMError('WebGPUUnavailable', 'WebGPU is not available in this browser (navigator.gpu is missing).');
  }
  const found = await requestAdapter(gpu, options);
  if (!found) {
    throw new WebVLMError('WebGPUUnavailable', 'WebGPU is present but no GPU adapter was found (requestAdapter returned null).');
  }
  const { adapter } = found;
  const disabled = new Set(options.disableFeatures ?? []);
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f)) as GPUFeatureName[];
  // Ask for every limit at the adapter's maximum; compat adapters otherwise hand out compat defaults.
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const key of [
    'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension',
    'maxStorageBuffersPerShaderStage', 'maxUniformBufferBindingSize', 'maxBindGroups', 'maxBindingsPerBindGroup',
  ]) {
    if (typeof al[key] === 'number') requiredLimits[key] = al[key];
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (cause) {
    throw new WebVLMError('WebGPUUnavailable', `The GPU adapter refused to create a device: ${(cause as Error)?.message ?? cause}`, { cause });
  }
  const summary = summarize(adapter);
  const text = `${summary.vendor} ${summary.architecture} ${summary.device} ${summary.description}`;
  const dl = device.limits;
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const caps: GpuCapabilities = {
    adapter: summary,
    featureLevel: found.level,
    software: SOFTWARE_ADAPTER.test(text),
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupMinSize: info?.subgroupMinSize ?? 0,
    subgroupMaxSize: info?.subgroupMaxSize ?? 0,
    timestampQuery: device.features.has('timestamp-query'),
    limits: {
      maxStorageBufferBindingSize: dl.maxStorageBufferBindingSize,
      maxBufferSize: dl.maxBufferSize,
      maxComputeWorkgroupStorageSize: dl.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: dl.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: dl.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: dl.maxStorageBuffersPerShaderStage,
      minUniformBufferOffsetAlignment: dl.minUniformBufferOffsetAlignment,
      minStorageBufferOffsetAlignment: dl.minStorageBufferOffsetAlignment,
    },
    features: [...device.features].map(String).sort(),
  };
  return { adapter, device, caps };
}

/** One line for logs: which adapter, which features. */
export function describeCaps(caps: GpuCapabilities): string {
  const a = caps.adapter;
  const feats = [caps.f16 && 'shader-f16', caps.subgroups && `subgroups(${caps.subgroupMinSize}-${caps.subgroupMaxSize})`, caps.timestampQuery && 'timestamp-query']
    .filter(Boolean)
    .join(', ');
  return `${a.vendor || '?'} / ${a.architecture || '?'} / ${a.description || a.device || '?'} [${caps.featureLevel}${caps.software ? ', software' : ''}] features: ${feats || 'none'}`;
}
