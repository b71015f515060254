/**
 * Token embedding gather (shaders/embedding.wgsl): out[t, :] = table[ids[t], :] for T token ids (u32) from
 * an f32 table, an f16 table (u32-packed pairs, flat element order), or an int4 table in webvlm's int4
 * format (./int4.ts, rows = vocabulary, K = D). Values are exact (f16 widening is exact; int4 gives
 * q·scale rounded once to f32, as `dequantizeInt4`). Ids ≥ V produce a zero row rather than reading out of
 * bounds: the shader cannot throw, so callers check ids they did not produce themselves.
 */
import source from '../../shaders/embedding.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { requireDistinct } from './elementwise.ts';
import { checkInt4Weights, type Int4GpuWeights } from './int4.ts';

export type EmbeddingTable =
  | { dtype: 'f32'; data: Binding; V: number; D: number }
  /** f16 bits, two per u32 word (low half first), element e = id·D + d. */
  | { dtype: 'f16'; data: Binding; V: number; D: number }
  /** Rows N = vocabulary size, K = hidden size. */
  | { dtype: 'int4'; weights: Int4GpuWeights };

export interface EmbeddingArgs {
  /** u32 token ids [T]. */
  ids: Binding;
  table: EmbeddingTable;
  /** f32 [T, D]. */
  out: Binding;
  T: number;
}

/** Vocabulary size and row length of a table. */
export function tableShape(t: EmbeddingTable): { V: number; D: number } {
  return t.dtype === 'int4' ? { V: t.weights.N, D: t.weights.K } : { V: t.V, D: t.D };
}

export function embedding(gpu: GpuContext, rec: Recorder, args: EmbeddingArgs): void {
  const { table, T } = args;
  if (!table || !['f32', 'f16', 'int4'].includes(table.dtype)) {
    throw new WebVLMError('InvalidArgument', `embedding: table dtype must be 'f32', 'f16' or 'int4', got ${String(table?.dtype)}.`);
  }
  const { V, D } = tableShape(table);
  requireDims('embedding', { T, V, D });
  requireBytes('embedding', 'ids', args.ids, T * 4);
  requireBytes('embedding', 'out', args.out, T * D * 4);
  const label = `embedding/${table.dtype} ${T}x${D} V${V}`;
  const wgs = grid(gpu, ceilDiv(T * D, 256));
  if (table.dtype === 'int4') {
    const w = table.weights;
    const l = checkInt4Weights('embedding', w);
    requireDistinct('embedding', args.out, { ids: args.ids, packed: w.packed, scales: w.scales });
    const params = rec.uniform(new Uint32Array([T, D, V, l.blocks, l.scaleStride, w.group, w.scaleType === 'f16' ? 1 : 0, 0]));
    const pipeline = gpu.pipelines.get({ name: 'embedding', source, entryPoint: 'embed_int4' });
    rec.dispatch(pipeline, [args.ids, w.packed, w.scales, args.out, params], wgs, label);
    return;
  }
  requireBytes('embedding', 'table', table.data, table.dtype === 'f32' ? V * D * 4 : Math.ceil((V * D) / 2) * 4);
  requireDistinct('embedding', args.out, { ids: args.ids, table: table.data });
  const params = rec.uniform(new Uint32Array([T, D, V, 0, 0, 0, 0, 0]));
  const pipeline = gpu.pipelines.get({ name: 'embedding', source, entryPoint: table.dtype === 'f32' ? 'embed_f32' : 'embed_f16' });
  rec.dispatch(pipeline, [args.ids, table.data, args.out, params], wgs, label);
}
