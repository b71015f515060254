/**
 * Which kernel variant runs on which adapter, decided once at device start.
 * On GPUs, workgroup-cooperative kernels (coalesced loads, subgroup/shared-memory reductions) win;
 * on CPU adapters (SwiftShader, llvmpipe) one-row-per-invocation kernels win 2.5–5× (measured, see
 * ../shared/webgpu-on-cpu.md). Tests run every variant regardless of this choice.
 */
import type { GpuCapabilities } from './device.ts';

export interface VariantChoice {
  /** GEMV / decode matmul: cooperative workgroup reduction vs one output row per invocation. */
  gemv: 'workgroup' | 'row';
  /** Use subgroup operations where a kernel has them. */
  subgroups: boolean;
  /** Use f16 storage/arithmetic variants where a kernel has them (accumulation stays f32). */
  f16: boolean;
}

export function chooseVariants(caps: GpuCapabilities): VariantChoice {
  return {
    gemv: caps.software ? 'row' : 'workgroup',
    // Kernels written for subgroups assume a subgroup of at least 4 lanes and read the real size at run time.
    subgroups: caps.subgroups && caps.subgroupMinSize >= 4,
    f16: caps.f16,
  };
}
