/**
 * WebGPU in Node through Dawn (npm `webgpu`). On these machines Vulkan gives lavapipe (Mesa ≥ 25
 * from bookworm-backports: the only adapter here with shader-f16) — see ../shared/webgpu-on-cpu.md.
 */
import { existsSync } from 'node:fs';

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
