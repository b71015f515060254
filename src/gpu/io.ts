/** Moving data between JS and GPU buffers. */
import { sizeClass, Usage, TENSOR_USAGE } from './buffers.ts';
import type { GpuContext } from './context.ts';

/** Creates a buffer holding `data` (mapped at creation: no extra copy through the queue). */
export function upload(gpu: GpuContext, data: ArrayBufferView, label?: string, usage: number = TENSOR_USAGE): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = gpu.allocator.create(size, usage, label);
  gpu.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength - (data.byteLength % 4));
  const tail = data.byteLength % 4;
  if (tail) {
    const pad = new Uint8Array(4);
    pad.set(new Uint8Array(data.buffer, data.byteOffset + data.byteLength - tail, tail));
    gpu.device.queue.writeBuffer(buffer, data.byteLength - tail, pad);
  }
  return buffer;
}

/**
 * MAP_READ staging buffers kept per device, by the allocator's size classes: a decode step reads back every token,
 * and allocating host-visible memory for each read cost milliseconds on an H100 (Dawn/Vulkan). A buffer is out
 * of the pool while it is mapped, so concurrent reads never share one. Not the allocator's own pool: staging
 * memory is not GPU memory in `gpuBytes`, and only a few buffers per class are kept.
 */
const stagingPools = new WeakMap<GPUDevice, Map<number, GPUBuffer[]>>();
const STAGING_POOLED_MAX = 64 << 20;
const STAGING_KEEP = 4;

function takeStaging(device: GPUDevice, size: number): GPUBuffer {
  const cls = sizeClass(size);
  if (cls > STAGING_POOLED_MAX) return device.createBuffer({ size, usage: Usage.MAP_READ | Usage.COPY_DST, label: 'readback' });
  return stagingPools.get(device)?.get(cls)?.pop() ?? device.createBuffer({ size: cls, usage: Usage.MAP_READ | Usage.COPY_DST, label: 'readback' });
}

function giveStaging(device: GPUDevice, buffer: GPUBuffer): void {
  if (buffer.size > STAGING_POOLED_MAX) return buffer.destroy();
  let pool = stagingPools.get(device);
  if (!pool) stagingPools.set(device, (pool = new Map()));
  let list = pool.get(buffer.size);
  if (!list) pool.set(buffer.size, (list = []));
  if (list.length >= STAGING_KEEP) return buffer.destroy();
  list.push(buffer);
}

/** Reads `byteLength` bytes of `buffer` from `offset` back to JS. */
export async function readBytes(gpu: GpuContext, buffer: GPUBuffer, byteLength = buffer.size, offset = 0): Promise<ArrayBuffer> {
  const size = Math.ceil(byteLength / 4) * 4;
  if (size === 0) return new ArrayBuffer(0);
  const staging = takeStaging(gpu.device, size);
  try {
    const enc = gpu.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
    gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(Usage.MAP_READ, 0, size);
  } catch (e) {
    staging.destroy();
    throw e;
  }
  const out = staging.getMappedRange(0, size).slice(0, byteLength);
  staging.unmap();
  giveStaging(gpu.device, staging);
  return out;
}

export async function readF32(gpu: GpuContext, buffer: GPUBuffer, count?: number, offsetElems = 0): Promise<Float32Array> {
  const n = count ?? buffer.size / 4 - offsetElems;
  return new Float32Array(await readBytes(gpu, buffer, n * 4, offsetElems * 4));
}

export async function readU32(gpu: GpuContext, buffer: GPUBuffer, count?: number, offsetElems = 0): Promise<Uint32Array> {
  const n = count ?? buffer.size / 4 - offsetElems;
  return new Uint32Array(await readBytes(gpu, buffer, n * 4, offsetElems * 4));
}
