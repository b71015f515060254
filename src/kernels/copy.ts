/**
 * Copy kernel binding: dst[dstOffset ..] = src[srcOffset ..] for `bytes` bytes (a multiple of 4).
 * Shader: shaders/copy.wgsl. It exists as the bandwidth reference for memory-bound kernels (a shader
 * copy does the same kind of loads and stores they do); plain data movement can use `rec.copy`.
 */
import source from '../../shaders/copy.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { bindingBytes, ceilDiv, grid, requireBytes, requireDims } from './common.ts';

export interface CopyArgs {
  src: Binding;
  dst: Binding;
  bytes: number;
  /** Byte offsets into the bindings (multiples of the element size: 16, or 4 when bytes % 16 ≠ 0). */
  srcOffset?: number;
  dstOffset?: number;
}

export function copy(gpu: GpuContext, rec: Recorder, args: CopyArgs): void {
  const { bytes, srcOffset = 0, dstOffset = 0 } = args;
  requireDims('copy', { bytes });
  requireDims('copy', { srcOffset, dstOffset }, { allowZero: true });
  const scalar = bytes % 16 !== 0 || srcOffset % 16 !== 0 || dstOffset % 16 !== 0;
  const elem = scalar ? 4 : 16;
  if (bytes % 4 || srcOffset % 4 || dstOffset % 4) {
    throw new WebVLMError('InvalidArgument', `copy: bytes (${bytes}) and offsets (${srcOffset}, ${dstOffset}) must be multiples of 4.`);
  }
  requireBytes('copy', 'src', args.src, srcOffset + bytes);
  requireBytes('copy', 'dst', args.dst, dstOffset + bytes);
  if (args.src === args.dst || ('buffer' in args.src && 'buffer' in args.dst && args.src.buffer === args.dst.buffer)) {
    throw new WebVLMError('InvalidArgument', 'copy: src and dst must be different buffers (WebGPU forbids binding one buffer as read and read_write).');
  }
  const count = bytes / elem;
  // Bind only whole elements: a runtime-sized array's length is the binding size / element size.
  const whole = (b: Binding) => ({
    buffer: 'buffer' in b ? b.buffer : b,
    offset: 'buffer' in b ? b.offset ?? 0 : 0,
    size: Math.floor(bindingBytes(b) / elem) * elem,
  });
  const pipeline = gpu.pipelines.get({ name: 'copy', source, defines: { SCALAR: scalar } });
  const params = rec.uniform(new Uint32Array([count, srcOffset / elem, dstOffset / elem, 0]));
  rec.dispatch(pipeline, [whole(args.src), whole(args.dst), params], grid(gpu, ceilDiv(count, 256)), `copy ${bytes} B${scalar ? ' (u32)' : ''}`);
}
