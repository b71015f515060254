/** Moving data between JS and GPU buffers. */
import { Usage, TENSOR_USAGE } from './buffers.ts';
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

/** Reads `byteLength` bytes of `buffer` from `offset` back to JS. */
export async function readBytes(gpu: GpuContext, buffer: GPUBuffer, byteLength = buffer.size, offset = 0): Promise<ArrayBuffer> {
  const size = Math.ceil(byteLength / 4) * 4;
  const staging = gpu.device.createBuffer({ size, usage: Usage.MAP_READ | Usage.COPY_DST, label: 'readback' });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(Usage.MAP_READ);
  const out = staging.getMappedRange().slice(0, byteLength);
  staging.destroy();
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
