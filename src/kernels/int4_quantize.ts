/**
 * GPU int4 quantizer binding: W[N, K] (f32, or raw bf16 straight from a checkpoint) → the int4 format of
 * ./int4.ts ('symmetric' range), so weights can be quantized at load without a pass through JS.
 * Shader: shaders/int4_quantize.wgsl. Same result as `quantizeInt4` up to one step on a rounding tie
 * (WGSL division is not correctly rounded); weights must be finite, scales must fit in f16 when f16.
 */
import source from '../../shaders/int4_quantize.wgsl?raw';
import type { GpuContext } from '../gpu/context.ts';
import type { Arena } from '../gpu/buffers.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { WebVLMError } from '../errors.ts';
import { ceilDiv, grid, requireBytes } from './common.ts';
import { checkInt4Shape, int4Layout, type Int4GpuWeights, type Int4Shape } from './int4.ts';

export interface Int4QuantizeArgs extends Int4Shape {
  /** W[N, K] row-major: f32, or bf16 as raw little-endian 16-bit pairs. */
  src: Binding;
  srcType: 'f32' | 'bf16';
  /** Outputs: `int4Layout(shape).packedWords` and `.scaleWords` u32 words. */
  packed: Binding;
  scales: Binding;
}

export function int4Quantize(gpu: GpuContext, rec: Recorder, args: Int4QuantizeArgs): void {
  checkInt4Shape('int4Quantize', args);
  const { N, K } = args;
  if (args.srcType !== 'f32' && args.srcType !== 'bf16') throw new WebVLMError('InvalidArgument', `int4Quantize: srcType must be 'f32' or 'bf16', got ${String(args.srcType)}.`);
  const l = int4Layout(args);
  requireBytes('int4Quantize', 'src', args.src, args.srcType === 'f32' ? N * K * 4 : Math.ceil((N * K) / 2) * 4);
  requireBytes('int4Quantize', 'packed', args.packed, l.packedWords * 4);
  requireBytes('int4Quantize', 'scales', args.scales, l.scaleWords * 4);
  const pairs = Math.ceil(l.groups / 2);
  const pipeline = gpu.pipelines.get({
    name: 'int4_quantize',
    source,
    defines: { BF16: args.srcType === 'bf16' },
    constants: { GROUP: args.group, SCALE_F16: args.scaleType === 'f16' ? 1 : 0 },
  });
  const params = rec.uniform(new Uint32Array([N, K, l.blocks, l.groups, l.scaleStride, pairs]));
  rec.dispatch(pipeline, [args.src, args.packed, args.scales, params], grid(gpu, ceilDiv(N * pairs, 64)), `int4_quantize ${N}x${K} g${args.group} ${args.scaleType} from ${args.srcType}`);
}

/** Allocates the outputs (in `arena` when given) and records the quantization; returns the GPU weights. */
export function quantizeInt4Gpu(gpu: GpuContext, rec: Recorder, args: Omit<Int4QuantizeArgs, 'packed' | 'scales'>, arena?: Arena, label = 'int4'): Int4GpuWeights {
  checkInt4Shape('int4Quantize', args);
  const l = int4Layout(args);
  const make = (words: number, what: string) => (arena ? arena.buffer(words * 4, undefined, `${label}/${what}`) : gpu.allocator.create(words * 4, undefined, `${label}/${what}`));
  const packed = make(l.packedWords, 'packed'), scales = make(l.scaleWords, 'scales');
  int4Quantize(gpu, rec, { ...args, packed, scales });
  return { N: args.N, K: args.K, group: args.group, scaleType: args.scaleType, packed, scales };
}
