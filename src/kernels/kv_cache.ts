/**
 * The KV cache's layout and the kernel that appends new rows (shaders/kv_append.wgsl); the cache itself (one K and
 * one V buffer per layer, allocated in this layout) is `KvCache` in src/models/kv-cache.ts.
 *
 * Layout, per layer: one f32 buffer K `[kvHeads, capacity, headDim]` and one V of the same shape.
 * Why: a KV head's keys are contiguous, so
 *  - decode (attention_decode) reads a chunk of keys of one head as one contiguous block — fully
 *    coalesced, and each row is read once per step for all the query heads that share it;
 *  - prefill after cached tokens (attention_prefill with `kvLayout: { kind: 'cache', capacity }`) loads
 *    K/V tiles the same way;
 *  - appending a token writes kvHeads rows of headDim contiguous values.
 * Separate buffers per layer keep every buffer far below binding limits (SmolVLM-256M at 8k tokens:
 * 3 × 8192 × 64 × 4 B = 6.3 MB per K) and let the engine drop or grow layers independently.
 * The capacity is fixed at allocation; growing means allocating a larger cache and copying.
 * (f16 storage, which halves decode traffic, is a planned variant.)
 */
import source from '../../shaders/kv_append.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { checkHeads, checkOffset, checkOutDistinct } from './attention_common.ts';

export interface KvCacheShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Tokens the cache holds. */
  capacity: number;
}

/** Bytes of one K (or V) buffer of one layer. */
export function kvCacheLayerBytes(s: Omit<KvCacheShape, 'layers'>): number {
  return s.kvHeads * s.capacity * s.headDim * 4;
}

/**
 * Checks a cache shape before allocation: dimensions, head size, and that one layer's buffer can be bound
 * (`ContextOverflow` naming the bytes and the device's limit otherwise).
 */
export function checkKvCacheShape(gpu: GpuContext, s: KvCacheShape): void {
  requireDims('kv_cache', { layers: s.layers, kvHeads: s.kvHeads, headDim: s.headDim, capacity: s.capacity });
  checkHeads('kv_cache', s.kvHeads, s.kvHeads, s.headDim);
  const bytes = kvCacheLayerBytes(s);
  const limit = gpu.caps.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new WebVLMError('ContextOverflow', `kv_cache: ${s.capacity} tokens need ${bytes} bytes per layer buffer; this device binds at most ${limit}.`, {
      details: { bytes, limit },
    });
  }
}

export interface KvAppendArgs {
  /** New rows `[n, ·]`: K of row t, head h at element kOffset + t·srcStride + h·headDim (V likewise). */
  kNew: Binding;
  vNew: Binding;
  kCache: Binding;
  vCache: Binding;
  n: number;
  /** First cache position written (tokens already cached). */
  pos: number;
  kvHeads: number;
  headDim: number;
  capacity: number;
  /** Elements between source rows; default kvHeads·headDim. */
  srcStride?: number;
  kOffset?: number;
  vOffset?: number;
}

export function kvAppend(gpu: GpuContext, rec: Recorder, args: KvAppendArgs): void {
  const K = 'kv_append';
  const { n, pos, kvHeads, headDim, capacity } = args;
  const srcStride = args.srcStride ?? kvHeads * headDim;
  const { kOffset = 0, vOffset = 0 } = args;
  requireDims(K, { n, capacity });
  requireDims(K, { pos }, { allowZero: true });
  checkHeads(K, kvHeads, kvHeads, headDim);
  checkOffset(K, 'srcStride', srcStride);
  checkOffset(K, 'kOffset', kOffset);
  checkOffset(K, 'vOffset', vOffset);
  if (srcStride < kvHeads * headDim) throw new WebVLMError('ShapeMismatch', `${K}: srcStride ${srcStride} is shorter than a row of ${kvHeads}×${headDim}.`);
  if (pos + n > capacity) {
    throw new WebVLMError('ContextOverflow', `${K}: writing tokens ${pos}..${pos + n - 1} overflows the KV cache capacity ${capacity}.`, { details: { pos, n, capacity } });
  }
  const span = (n - 1) * srcStride + kvHeads * headDim;
  requireBytes(K, 'kNew', args.kNew, (kOffset + span) * 4);
  requireBytes(K, 'vNew', args.vNew, (vOffset + span) * 4);
  const cacheBytes = kvHeads * capacity * headDim * 4;
  requireBytes(K, 'kCache', args.kCache, cacheBytes);
  requireBytes(K, 'vCache', args.vCache, cacheBytes);
  checkOutDistinct(K, args.kCache, [args.kNew, args.vNew, args.vCache]);
  checkOutDistinct(K, args.vCache, [args.kNew, args.vNew]);
  const hd4 = headDim / 4;
  const pipeline = gpu.pipelines.get({ name: 'kv_append', source, constants: { HD4: hd4 } });
  const params = rec.uniform(new Uint32Array([n, kvHeads, pos, capacity, srcStride / 4, kOffset / 4, vOffset / 4, 0]));
  rec.dispatch(pipeline, [args.kNew, args.vNew, args.kCache, args.vCache, params], grid(gpu, ceilDiv(n * kvHeads * hd4, 64)), `kv_append ${n}@${pos} h${kvHeads} d${headDim}`);
}
