/**
 * Flash-attention prefill binding. Shader: shaders/attention_prefill.wgsl.
 *
 * Layouts (f32, row-major, element offsets/strides must be multiples of 4):
 *  - Q   `[batch, seqLen, heads·headDim]` — the q projection's output as is (row stride `qStride`,
 *        default heads·headDim, so a fused QKV output can be read in place with `qOffset`).
 *  - K,V `tokens` layout `[batch, keys, kvHeads·headDim]` (the k/v projections' output; vision encoder,
 *        or a prefill without cache), or `cache` layout `[kvHeads, capacity, headDim]` (kv_cache.ts),
 *        which a text prefill reads after `kvAppend` put the new rows in (so it sees the cached past).
 *  - O   `[batch, seqLen, heads·headDim]`, dense — the o projection's input.
 * Semantics (transformers' eager attention with repeat_kv): query head h uses KV head
 * ⌊h / (heads/kvHeads)⌋; scores · scale (default headDim^-0.5); keys ≥ kvLen are masked (key padding);
 * causal: query row i sits at absolute position past + i and sees keys 0..past+i. A row that sees no
 * key (kvLen = 0) outputs zeros.
 */
import source from '../../shaders/attention_prefill.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { checkHeads, checkKv, checkOffset, checkOutDistinct, kvStrides, uniformBlock, workgroupBudget, type KvLayout } from './attention_common.ts';

export interface AttentionPrefillArgs {
  q: Binding;
  k: Binding;
  v: Binding;
  out: Binding;
  /** Query rows per batch item. */
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
  /** Sequences (tokens layout only; e.g. the vision encoder's image frames). Default 1. */
  batch?: number;
  /** Causal: absolute position of query row 0 (tokens already in the cache). Default 0. */
  past?: number;
  /** K/V rows per batch item the buffers hold. Default: past + seqLen (causal) or seqLen. */
  keys?: number;
  /** Keys 0..kvLen-1 are visible; later ones are padding. Default: keys. */
  kvLen?: number;
  /** Default headDim^-0.5. */
  scale?: number;
  /** Default `{ kind: 'tokens' }`. */
  kvLayout?: KvLayout;
  /** Elements between query rows. Default heads·headDim. */
  qStride?: number;
  /** Element offsets into q, k, v. Default 0. */
  qOffset?: number;
  kOffset?: number;
  vOffset?: number;
  /** Default: 'tile-lowmem' on software adapters; on GPUs 'rows-shared' when bidirectional, else 'tile'. */
  variant?: AttentionVariant;
}

/**
 * 'tile': flash attention with Q/K/V tiles in workgroup memory and GQA packing (GPUs).
 * 'tile-lowmem': the same, with Q read from memory rather than a workgroup tile (~9 instead of ~26 KB of
 *   workgroup memory at d64): for CPU adapters, where SwiftShader charges ~1 µs per f32 of workgroup memory
 *   per workgroup. Measured at S=512 (9/3, d64): SwiftShader 1.0 s vs 1.35 s for 'tile'; GLES equal.
 * 'rows': one invocation per query vector, no workgroup memory, no barriers. Measured slower than the
 *   tiled ones on SwiftShader (1.6 s) and equal on GLES (~0.5 s); kept for devices with little workgroup
 *   memory and as a simple cross-check.
 * 'rows-shared': one invocation per query row of one head (q and output in registers), 64 rows per workgroup
 *   sharing staged K/V tiles. On an H100 (Dawn/Vulkan) 1.4–1.8× 'tile' for SmolVLM's vision attention.
 */
export type AttentionVariant = 'tile' | 'tile-lowmem' | 'rows' | 'rows-shared';

/** Keys per K/V tile (fixed in the shader). */
const BK = 16;

/** Tile shape: M = rg·4 query vectors (2·M invocations), the largest that fits the workgroup memory budget. */
export function prefillTile(headDim: number, workgroupStorage: number): { rg: number; bytes: number } {
  const hd4 = headDim / 4, qs = hd4 + 1;
  const budget = workgroupBudget(workgroupStorage);
  const bytesOf = (rg: number) => 16 * (rg * 4 * qs + BK * qs) + 4 * (rg * 4 * (BK + 1) + rg * 4);
  for (const rg of [16, 8, 4, 2]) {
    const bytes = bytesOf(rg);
    if (bytes <= budget) return { rg, bytes };
  }
  throw new WebVLMError('UnsupportedFeature', `attention_prefill: head_dim ${headDim} needs more workgroup memory than this device's ${workgroupStorage} bytes.`);
}

export function attentionPrefill(gpu: GpuContext, rec: Recorder, args: AttentionPrefillArgs): void {
  const K = 'attention_prefill';
  const { seqLen, heads, kvHeads, headDim, causal } = args;
  const batch = args.batch ?? 1;
  const past = args.past ?? 0;
  const keys = args.keys ?? (causal ? past + seqLen : seqLen);
  const kvLen = args.kvLen ?? keys;
  const layout = args.kvLayout ?? { kind: 'tokens' };
  const qStride = args.qStride ?? heads * headDim;
  const { qOffset = 0, kOffset = 0, vOffset = 0 } = args;
  requireDims(K, { seqLen, batch });
  requireDims(K, { past, keys, kvLen }, { allowZero: true });
  checkHeads(K, heads, kvHeads, headDim);
  if (kvLen > keys) throw new WebVLMError('ShapeMismatch', `${K}: kvLen ${kvLen} exceeds the ${keys} key rows given.`);
  if (causal && past + seqLen > keys) {
    throw new WebVLMError('ShapeMismatch', `${K}: causal queries at positions ${past}..${past + seqLen - 1} need ${past + seqLen} key rows, got ${keys}.`);
  }
  if (!causal && past !== 0) throw new WebVLMError('InvalidArgument', `${K}: past applies to causal attention only.`);
  const scale = args.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new WebVLMError('InvalidArgument', `${K}: scale must be finite, got ${scale}.`);
  checkOffset(K, 'qOffset', qOffset);
  checkOffset(K, 'qStride', qStride);
  if (qStride < heads * headDim) throw new WebVLMError('ShapeMismatch', `${K}: qStride ${qStride} is shorter than a row of ${heads}×${headDim}.`);
  const kv = kvStrides(K, layout, kvHeads, headDim, keys, batch);
  requireBytes(K, 'q', args.q, (qOffset + (batch * seqLen - 1) * qStride + heads * headDim) * 4);
  checkKv(K, args.k, args.v, kOffset, vOffset, kv.span);
  requireBytes(K, 'out', args.out, batch * seqLen * heads * headDim * 4);
  checkOutDistinct(K, args.out, [args.q, args.k, args.v]);

  const hd4 = headDim / 4;
  // On an H100, 'rows-shared' ran bidirectional encoder attention 1.4× (1 frame) to 1.8× (5 frames) faster than
  // 'tile'. Causal GQA prefill at SmolVLM's 9/3 heads (S = 81…900) was 1.2–1.3× faster on 'tile', which shares
  // each K/V tile across a group's heads (even at S = 2000), so causal keeps 'tile'.
  const variant = args.variant ?? (gpu.caps.software ? 'tile-lowmem' : causal ? 'tile' : 'rows-shared');
  const { rg } = prefillTile(headDim, gpu.caps.limits.maxComputeWorkgroupStorageSize);
  const M = rg * 4;
  const group = heads / kvHeads;
  const headsPerTile = Math.min(group, M);
  const gTiles = ceilDiv(group, headsPerTile);
  const rowsPerTile = Math.floor(M / headsPerTile);
  const tiles = ceilDiv(seqLen, rowsPerTile);
  if (variant !== 'rows' && tiles > gpu.caps.limits.maxComputeWorkgroupsPerDimension) {
    throw new WebVLMError('ShapeMismatch', `${K}: seqLen ${seqLen} needs ${tiles} query tiles, more than one dispatch dimension allows.`);
  }
  const params = rec.uniform(
    uniformBlock(
      [
        seqLen, kvLen, past, causal ? 1 : 0, group, headsPerTile, rowsPerTile, gTiles,
        qStride / 4, (seqLen * qStride) / 4, qOffset / 4, (heads * headDim) / 4, (seqLen * heads * headDim) / 4,
        kv.row4, kv.head4, kv.batch / 4, kOffset / 4, vOffset / 4, heads,
      ],
      scale * Math.LOG2E,
    ),
  );
  const label = `attention_prefill/${variant} ${batch}×${seqLen}→${kvLen} h${heads}/${kvHeads} d${headDim}${causal ? ' causal' : ''}`;
  if (variant === 'rows') {
    const pipeline = gpu.pipelines.get({ name: 'attention_prefill', source, entryPoint: 'main_rows', constants: { HD4: hd4 } });
    const [x, y] = grid(gpu, ceilDiv(seqLen * heads, 16));
    rec.dispatch(pipeline, [args.q, args.k, args.v, args.out, params], [x, y, batch], label);
    return;
  }
  if (variant === 'rows-shared') {
    // Keys per staged tile: K and V rows of SB keys must fit the workgroup budget (32 for head_dim 64).
    const sb = Math.min(32, 2 ** Math.floor(Math.log2(workgroupBudget(gpu.caps.limits.maxComputeWorkgroupStorageSize) / (2 * headDim * 4))));
    if (sb < 1) throw new WebVLMError('UnsupportedFeature', `${K}: head_dim ${headDim} needs more workgroup memory than this device has.`);
    const pipeline = gpu.pipelines.get({ name: 'attention_prefill', source, entryPoint: 'main_rows_shared', constants: { HD4: hd4, SB: sb } });
    const rowTiles = ceilDiv(seqLen, 64);
    if (rowTiles > gpu.caps.limits.maxComputeWorkgroupsPerDimension) {
      throw new WebVLMError('ShapeMismatch', `${K}: seqLen ${seqLen} needs ${rowTiles} row tiles, more than one dispatch dimension allows.`);
    }
    rec.dispatch(pipeline, [args.q, args.k, args.v, args.out, params], [rowTiles, heads, batch], label);
    return;
  }
  const qGlobal = variant === 'tile-lowmem' ? 1 : 0;
  const pipeline = gpu.pipelines.get({ name: 'attention_prefill', source, constants: { HD4: hd4, RG: rg, Q_GLOBAL: qGlobal } });
  rec.dispatch(pipeline, [args.q, args.k, args.v, args.out, params], [tiles, kvHeads * gTiles, batch], label);
}
