/**
 * WebGPU in Node through Dawn (npm `webgpu`). On these machines Vulkan gives lavapipe (Mesa ≥ 25
 * from bookworm-backports: the only adapter here with shader-f16) — see ../shared/webgpu-on-cpu.md.
 */
import { existsSync } from 'node:fs';
import { GpuContext } from '../../src/gpu/context.ts';
import { describeCaps } from '../../src/gpu/device.ts';

let cached: GPU | null | undefined;

export async function dawnGpu(): Promise<GPU | null> {
  if (cached !== undefined) return cached;
  try {
    if (!process.env.VK_ICD_FILENAMES && existsSync('/usr/share/vulkan/icd.d/lvp_icd.json')) {
      process.env.VK_ICD_FILENAMES = '/usr/share/vulkan/icd.d/lvp_icd.json';
    }
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    cached = create([]) as GPU;
  } catch (e) {
    console.error(`Dawn (webgpu package) unavailable: ${(e as Error).message}`);
    cached = null;
  }
  return cached;
}

/**
 * A GpuContext on Dawn for a Node test suite, or null with the reason (reported as a skip).
 * Logs the adapter and its features.
 */
export async function dawnContext(): Promise<{ gpu: GpuContext | null; why: string }> {
  const g = await dawnGpu();
  if (!g) return { gpu: null, why: 'Dawn unavailable' };
  try {
    const gpu = await GpuContext.create({ gpu: g });
    console.log(`# adapter: ${describeCaps(gpu.caps)}`);
    return { gpu, why: '' };
  } catch (e) {
    return { gpu: null, why: (e as Error).message };
  }
}
