/**
 * Shared argument checks and layout arithmetic of the attention kernels (attention_prefill.ts,
 * attention_decode.ts, kv_cache.ts). Sizes are in elements (f32) unless a name says bytes.
 */
import { bufferOf } from './elementwise.ts';
import { WebVLMError } from '../errors.ts';
import type { Binding } from '../gpu/recorder.ts';
import { requireBytes, requireDims } from './common.ts';

/** Largest head dimension the attention kernels take (the P·V phase holds ≤ 4 vec4 columns per invocation × 8). */
export const ATTENTION_MAX_HEAD_DIM = 128;

/**
 * Where K and V rows live.
 *  - `tokens`: straight out of the k/v projections, `[batch, keys, kvHeads·headDim]` (row stride `kvStride`).
 *  - `cache`:  the KV cache, `[kvHeads, capacity, headDim]` (see kv_cache.ts); batch 1.
 */
export type KvLayout = { kind: 'tokens'; kvStride?: number } | { kind: 'cache'; capacity: number };

export interface KvStrides {
  /** vec4 stride between consecutive keys of one head. */
  row4: number;
  /** vec4 stride between KV heads. */
  head4: number;
  /** Elements one batch item spans (0 for the cache). */
  batch: number;
  /** Elements from a K/V binding's start (plus offset) to the end of its last row: the bytes it must hold ÷ 4. */
  span: number;
}

export function checkHeads(kernel: string, heads: number, kvHeads: number, headDim: number): void {
  requireDims(kernel, { heads, kvHeads, headDim });
  if (headDim % 4 !== 0 || headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new WebVLMError('UnsupportedFeature', `${kernel}: head_dim ${headDim} is not supported (a multiple of 4, at most ${ATTENTION_MAX_HEAD_DIM}).`, {
      details: { headDim },
    });
  }
  if (heads % kvHeads !== 0) {
    throw new WebVLMError('ShapeMismatch', `${kernel}: ${heads} query heads cannot share ${kvHeads} KV heads evenly (heads must be a multiple of kvHeads).`);
  }
}

export function checkOffset(kernel: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value % 4 !== 0) {
    throw new WebVLMError('InvalidArgument', `${kernel}: ${name} = ${value} must be a non-negative multiple of 4 elements (the kernels read vec4s).`);
  }
}

/** Strides of K/V for a layout, after validating it; `keys` rows per batch item are addressed. */
export function kvStrides(kernel: string, layout: KvLayout, kvHeads: number, headDim: number, keys: number, batch: number): KvStrides {
  if (layout.kind === 'cache') {
    requireDims(kernel, { capacity: layout.capacity });
    if (batch !== 1) throw new WebVLMError('ShapeMismatch', `${kernel}: the KV cache layout holds one sequence; batch must be 1, got ${batch}.`);
    if (keys > layout.capacity) {
      throw new WebVLMError('ContextOverflow', `${kernel}: ${keys} keys exceed the KV cache capacity ${layout.capacity}.`, { details: { keys, capacity: layout.capacity } });
    }
    return { row4: headDim / 4, head4: (layout.capacity * headDim) / 4, batch: 0, span: kvHeads * layout.capacity * headDim };
  }
  const stride = layout.kvStride ?? kvHeads * headDim;
  checkOffset(kernel, 'kvStride', stride);
  if (stride < kvHeads * headDim) throw new WebVLMError('ShapeMismatch', `${kernel}: kvStride ${stride} is shorter than a row of ${kvHeads}×${headDim}.`);
  const rows = batch * keys;
  return { row4: stride / 4, head4: headDim / 4, batch: keys * stride, span: rows === 0 ? 0 : (rows - 1) * stride + kvHeads * headDim };
}

/** Checks that K and V (at their element offsets) hold `span` elements, and that `out` aliases no input. */
export function checkKv(kernel: string, k: Binding, v: Binding, kOffset: number, vOffset: number, span: number): void {
  checkOffset(kernel, 'kOffset', kOffset);
  checkOffset(kernel, 'vOffset', vOffset);
  requireBytes(kernel, 'k', k, (kOffset + span) * 4);
  requireBytes(kernel, 'v', v, (vOffset + span) * 4);
}

export function checkOutDistinct(kernel: string, out: Binding, inputs: Binding[]): void {
  const ob = bufferOf(out);
  if (inputs.some((b) => bufferOf(b) === ob)) {
    throw new WebVLMError('InvalidArgument', `${kernel}: out must not share a buffer with q, k or v (WebGPU forbids binding one buffer as read and read_write).`);
  }
}

/** Packs u32 fields followed by one trailing f32 into a uniform block. */
export function uniformBlock(u32s: number[], f32: number): ArrayBuffer {
  const buf = new ArrayBuffer((u32s.length + 1) * 4);
  const u = new Uint32Array(buf);
  u32s.forEach((x, i) => {
    if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new WebVLMError('Internal', `uniform field ${i} = ${x} does not fit a u32.`);
    u[i] = x;
  });
  new Float32Array(buf)[u32s.length] = f32;
  return buf;
}

/** Workgroup memory the attention kernels may use: the device's limit, at most 32 KiB (occupancy). */
export function workgroupBudget(limit: number): number {
  return Math.min(limit, 32768);
}
