/**
 * Shared checks and helpers for kernel bindings. Every binding validates shapes and buffer sizes
 * here, before anything is recorded, so a bad call throws a typed error and dispatches nothing.
 */
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding } from '../gpu/recorder.ts';

/** Bytes a binding exposes to the shader. */
export function bindingBytes(b: Binding): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

export function requireDims(kernel: string, dims: Record<string, number>, opts: { allowZero?: boolean } = {}): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0 || (!opts.allowZero && v === 0)) {
      throw new WebVLMError('ShapeMismatch', `${kernel}: ${name} must be a ${opts.allowZero ? 'non-negative' : 'positive'} integer, got ${v}.`);
    }
  }
}

export function requireBytes(kernel: string, name: string, b: Binding, bytes: number): void {
  const have = bindingBytes(b);
  if (have < bytes) {
    throw new WebVLMError('BufferTooSmall', `${kernel}: ${name} holds ${have} bytes but the shape needs ${bytes}.`, {
      details: { kernel, buffer: name, have, need: bytes },
    });
  }
}

/** Splits a 1-D workgroup count over x and y so neither exceeds the per-dimension limit. */
export function grid(gpu: GpuContext, workgroups: number): [number, number] {
  const max = gpu.caps.limits.maxComputeWorkgroupsPerDimension;
  if (workgroups <= max) return [workgroups, 1];
  const y = Math.ceil(workgroups / max);
  return [Math.ceil(workgroups / y), y];
}

/** A 4-byte buffer to bind where an optional input (bias, …) is absent. */
export function dummy(gpu: GpuContext): GPUBuffer {
  const cache = gpu as unknown as { __dummy?: GPUBuffer };
  return (cache.__dummy ??= gpu.allocator.create(16, undefined, 'dummy'));
}

export const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
