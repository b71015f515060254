/**
 * Low-resolution-query token compression: each cell of a coarse (s× smaller) query grid attends,
 * multi-head, to its window of the full-resolution visual token grid. Training-free when the
 * projections are identity. Shader: shaders/compress.wgsl; where it fits SmolVLM: compress.md.
 *
 * Shapes: X [F, H, W, C] (row-major, F frames); Hq = ceil(H/s), Wq = ceil(W/s), Nq = Hq·Wq;
 * Y [F, Hq, Wq, C]; learned queries Q0 [Nq, C] (shared by all frames).
 *
 * Formula, for frame f and query (i, j), head h of `heads` (hd = C/heads channels each):
 *   region   R(i,j) = [i·s, min(i·s+s, H)) × [j·s, min(j·s+s, W))            (ragged edges clipped)
 *   q0       = mean_{t ∈ R(i,j)} X[f, t]            (default)   or Q0[i·Wq + j]   (learned queries)
 *   q        = Wq·q0 + bq    k_t = Wk·X[f,t] + bk    v_t = Wv·X[f,t] + bv   (each projection optional:
 *              identity when absent; weights [C, C] in nn.Linear layout, i.e. out = in · Wᵀ; f32 or int4)
 *   window   N(i,j) = rows [i·stride − pad, i·stride − pad + window) ∩ [0, H),
 *                     cols [j·stride − pad, j·stride − pad + window) ∩ [0, W),
 *              pad = floor((window − stride)/2); window = stride = s (default) gives exactly R(i,j);
 *              window = 'global': every token of the frame (resampler-style)
 *   a_h      = Σ_{t ∈ N(i,j)} softmax_t(scale · q_h · k_{t,h}) · v_{t,h},  scale = hd^-0.5 by default
 *   o        = Wo·a + bo   (or a)
 *   Y[f,i,j] = o + (residual ? q0 : 0)      (q0 = the pooled or learned query *before* Wq)
 *
 * Temporaries (pooled queries when projected, projected q/k/v, the Wo output) live in a caller-provided
 * `workspace` of `compressWorkspaceBytes(args)` bytes; parameter-free calls need none (the attention
 * kernel pools its own query). `out` is also used as scratch. Projections run on ./matmul.ts (f32) or
 * ./int4_gemm.ts (int4).
 * Buffers need STORAGE | COPY_SRC | COPY_DST (TENSOR_USAGE) when projections are on (staging copies).
 * Dispatches: 1 parameter-free; with QKVO + residual: pool, copy, 4 matmuls, attend, residual add.
 * Two attention kernels: 'workgroup' (GPUs) and 'row' (CPU adapters); see `variant`.
 */
import source from '../../shaders/compress.wgsl?raw';
import { WebVLMError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { bindingBytes, ceilDiv, grid, requireBytes, requireDims } from './common.ts';
import { checkInt4Weights, type Int4GpuWeights } from './int4.ts';
import { int4Gemm } from './int4_gemm.ts';
import { matmul } from './matmul.ts';

/**
 * A projection: f32 weights `w` [C, C] in nn.Linear layout (out_features, in_features), run by ./matmul.ts,
 * or int4 weights (./int4.ts format, N = K = C), run by ./int4_gemm.ts. Optional f32 bias [C].
 */
export type CompressLinear = { w: Binding; bias?: Binding } | { int4: Int4GpuWeights; bias?: Binding };

export interface CompressDims {
  F: number;
  H: number;
  W: number;
  C: number;
  heads: number;
  /** Query-grid factor: Hq = ceil(H/s), Wq = ceil(W/s). */
  s: number;
  /** Window side in tokens (default s), or 'global' (every token of the frame). */
  window?: number | 'global';
  /** Step between neighbouring queries' windows (default s). Must not exceed the window (tokens would be skipped). */
  stride?: number;
  /** True when learned queries Q0 are given (changes the workspace plan). */
  learnedQueries?: boolean;
  proj?: { q?: CompressLinear; k?: CompressLinear; v?: CompressLinear; o?: CompressLinear };
  residual?: boolean;
}

export interface CompressArgs extends CompressDims {
  x: Binding;
  out: Binding;
  /** Learned queries Q0 [Nq, C]; default: the s×s average-pooled tokens. */
  queries?: Binding;
  /** Softmax scale; default (C/heads)^-0.5. */
  scale?: number;
  /** Temporaries; needed when `compressWorkspaceBytes` > 0 (256-byte aligned offset). */
  workspace?: Binding;
  /**
   * Attention kernel: 'workgroup' (one workgroup per query, heads in lanes: GPUs) or 'row' (one
   * invocation per query and head, no barriers: CPU adapters, head_dim ≤ 256). Default: 'row' where the
   * adapter prefers row kernels (`gpu.variants.gemv`) and head_dim allows, else 'workgroup'.
   */
  variant?: 'row' | 'workgroup';
  /** Force the 'workgroup' variant's size (tests, benchmarks); default chosen from C and heads. */
  workgroupSize?: 64 | 256;
}

export interface CompressPoolArgs {
  x: Binding;
  out: Binding;
  F: number;
  H: number;
  W: number;
  C: number;
  s: number;
}

/** Limits of the attention kernel's register/workgroup-memory layout (see compress.wgsl). */
export const COMPRESS_MAX_CHANNELS = 2048;
export const COMPRESS_MAX_HEADS = 256;
const PAIRS = 256;
const MAXR = 8;
const MAXHD = 256; // the row variant's private accumulator
const ALIGN = 256; // the largest minStorageBufferOffsetAlignment WebGPU allows

export function compressGrid(H: number, W: number, s: number): { Hq: number; Wq: number } {
  return { Hq: ceilDiv(H, s), Wq: ceilDiv(W, s) };
}

interface Plan {
  Hq: number;
  Wq: number;
  Nq: number;
  global: boolean;
  win: number;
  stride: number;
  pad: number;
  /** Bytes and offsets of the workspace parts (−1: not needed). */
  off: { q0: number; q: number; k: number; v: number; o: number };
  bytes: number;
  /** Rows of the projected-query matmul (Nq for shared learned queries). */
  qRows: number;
}

function validateLinear(name: string, lin: CompressLinear | undefined, C: number): void {
  if (!lin) return;
  if ('int4' in lin) {
    if (lin.int4.N !== C || lin.int4.K !== C) {
      throw new WebVLMError('ShapeMismatch', `compress: proj.${name} int4 weights are ${lin.int4.N}×${lin.int4.K}, expected ${C}×${C}.`);
    }
    checkInt4Weights(`compress proj.${name}`, lin.int4);
  } else {
    requireBytes('compress', `proj.${name}.w`, lin.w, C * C * 4);
  }
  if (lin.bias) requireBytes('compress', `proj.${name}.bias`, lin.bias, C * 4);
}

function plan(d: CompressDims): Plan {
  const { F, H, W, C, heads, s } = d;
  requireDims('compress', { F, H, W, C, heads, s });
  if (C % heads !== 0) throw new WebVLMError('ShapeMismatch', `compress: heads=${heads} does not divide C=${C}.`);
  if (C > COMPRESS_MAX_CHANNELS) throw new WebVLMError('UnsupportedFeature', `compress: C=${C} exceeds ${COMPRESS_MAX_CHANNELS} channels.`);
  if (heads > COMPRESS_MAX_HEADS) throw new WebVLMError('UnsupportedFeature', `compress: heads=${heads} exceeds ${COMPRESS_MAX_HEADS}.`);
  const { Hq, Wq } = compressGrid(H, W, s);
  const global = d.window === 'global';
  let win = s, stride = s, pad = 0;
  if (d.window !== 'global') {
    win = d.window ?? s;
    stride = d.stride ?? s;
    for (const [name, v] of [['window', win], ['stride', stride]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new WebVLMError('InvalidArgument', `compress: ${name} must be a positive integer or 'global', got ${v}.`);
    }
    if (win < stride) {
      throw new WebVLMError('InvalidArgument', `compress: window ${win} is smaller than stride ${stride}; the tokens between windows would be ignored.`);
    }
    pad = Math.floor((win - stride) / 2);
    // The last query's window must still reach into the grid (else its softmax is over nothing).
    if ((Hq - 1) * stride - pad >= H || (Wq - 1) * stride - pad >= W) {
      throw new WebVLMError('InvalidArgument', `compress: with stride ${stride} the last queries' windows fall outside the ${H}×${W} grid (query grid ${Hq}×${Wq}).`);
    }
  }
  const P = d.proj ?? {};
  const Nq = Hq * Wq;
  const learned = !!d.learnedQueries;
  const tokens = F * H * W * C * 4;
  const queries = F * Nq * C * 4;
  const qRows = learned ? Nq : F * Nq;
  const off = { q0: -1, q: -1, k: -1, v: -1, o: -1 };
  let bytes = 0;
  const take = (n: number) => {
    const o = bytes;
    bytes = Math.ceil((bytes + n) / ALIGN) * ALIGN;
    return o;
  };
  if (!learned && (P.q || (P.o && d.residual))) off.q0 = take(queries);
  if (P.q) off.q = take(qRows * C * 4);
  if (P.k) off.k = take(tokens);
  if (P.v) off.v = take(tokens);
  if (P.o) off.o = take(queries);
  return { Hq, Wq, Nq, global, win, stride, pad, off, bytes, qRows };
}

/** Workspace bytes `compress` needs for these dimensions and options (0 for parameter-free calls). */
export function compressWorkspaceBytes(d: CompressDims): number {
  return plan(d).bytes;
}

function range(b: Binding): { buffer: GPUBuffer; lo: number; hi: number } {
  if ('buffer' in b) {
    const lo = b.offset ?? 0;
    return { buffer: b.buffer, lo, hi: lo + bindingBytes(b) };
  }
  return { buffer: b, lo: 0, hi: b.size };
}

function requireDisjoint(a: Binding, an: string, b: Binding | undefined, bn: string): void {
  if (!b) return;
  const x = range(a), y = range(b);
  if (x.buffer === y.buffer && x.lo < y.hi && y.lo < x.hi) {
    throw new WebVLMError('InvalidArgument', `compress: ${an} overlaps ${bn}; the output and temporaries must not alias inputs.`);
  }
}

function pickWorkgroup(C: number, heads: number, forced?: number): number {
  if (forced !== undefined) {
    if (forced !== 64 && forced !== 256) throw new WebVLMError('InvalidArgument', `compress: workgroupSize must be 64 or 256, got ${forced}.`);
    if (C > MAXR * forced || heads > forced) {
      throw new WebVLMError('UnsupportedFeature', `compress: workgroupSize ${forced} cannot hold C=${C}, heads=${heads} (C ≤ ${MAXR}·WG, heads ≤ WG).`);
    }
    return forced;
  }
  // Two pipelines only (each costs seconds to compile on CPU adapters): 64 invocations for narrow
  // tokens, 256 (≤ 8 channels each) otherwise.
  return C <= 256 && heads <= 64 ? 64 : 256;
}

/** Average pooling over s×s regions (ragged edge regions average their real tokens): X [F,H,W,C] → [F,Hq,Wq,C]. */
export function compressPool(gpu: GpuContext, rec: Recorder, args: CompressPoolArgs): void {
  const { F, H, W, C, s } = args;
  requireDims('compressPool', { F, H, W, C, s });
  const { Hq, Wq } = compressGrid(H, W, s);
  requireBytes('compressPool', 'x', args.x, F * H * W * C * 4);
  requireBytes('compressPool', 'out', args.out, F * Hq * Wq * C * 4);
  recordPool(gpu, rec, args.x, args.out, F, H, W, C, s, Hq, Wq);
}

function auxParams(rec: Recorder, v: number[]) {
  const u = new Uint32Array(12);
  u.set(v);
  return rec.uniform(u);
}

function recordPool(gpu: GpuContext, rec: Recorder, x: Binding, out: Binding, F: number, H: number, W: number, C: number, s: number, Hq: number, Wq: number): void {
  const total = F * Hq * Wq * C;
  const pipeline = gpu.pipelines.get({ name: 'compress', source, entryPoint: 'pool' });
  const params = auxParams(rec, [F, H, W, C, Hq, Wq, s, total, 0, 0]);
  rec.dispatch(pipeline, [x, out, params], grid(gpu, ceilDiv(total, 256)), `compress/pool ${F}x${H}x${W}x${C} s${s}`);
}

/** out[M, C] = in[M, C] · Wᵀ + b on the f32 or int4 matmul kernel (composed, not re-implemented). */
function project(gpu: GpuContext, rec: Recorder, lin: CompressLinear, a: Binding, out: Binding, M: number, C: number): void {
  if ('int4' in lin) int4Gemm(gpu, rec, { a, w: lin.int4, bias: lin.bias, out, M });
  else matmul(gpu, rec, { a, b: lin.w, bias: lin.bias, out, M, N: C, K: C });
}

function subBinding(ws: Binding, offset: number, bytes: number): Binding {
  const r = range(ws);
  return { buffer: r.buffer, offset: r.lo + offset, size: bytes };
}

/** Records the compression of X into Y (see the formula above). Validates everything before recording. */
export function compress(gpu: GpuContext, rec: Recorder, args: CompressArgs): void {
  const learned = args.queries !== undefined;
  const pl = plan({ ...args, learnedQueries: learned });
  const { F, H, W, C, heads, s } = args;
  const { Hq, Wq, Nq } = pl;
  const P = args.proj ?? {};
  const hd = C / heads;
  const scale = args.scale ?? 1 / Math.sqrt(hd);
  if (!Number.isFinite(scale)) throw new WebVLMError('InvalidArgument', `compress: scale must be finite, got ${scale}.`);
  requireBytes('compress', 'x', args.x, F * H * W * C * 4);
  requireBytes('compress', 'out', args.out, F * Nq * C * 4);
  if (args.queries) requireBytes('compress', 'queries', args.queries, Nq * C * 4);
  for (const name of ['q', 'k', 'v', 'o'] as const) validateLinear(name, P[name], C);
  const variant = args.variant ?? (gpu.variants.gemv === 'row' && hd <= MAXHD ? 'row' : 'workgroup');
  if (variant !== 'row' && variant !== 'workgroup') throw new WebVLMError('InvalidArgument', `compress: unknown variant ${String(variant)}.`);
  if (variant === 'row' && hd > MAXHD) throw new WebVLMError('UnsupportedFeature', `compress: the row variant holds head_dim ≤ ${MAXHD}, got ${hd}.`);
  const wgSize = pickWorkgroup(C, heads, args.workgroupSize);
  // The projections' matmuls tile rows by 64; check their grid here so nothing is half-recorded.
  if ((P.k || P.v) && ceilDiv(F * H * W, 64) > gpu.caps.limits.maxComputeWorkgroupsPerDimension) {
    throw new WebVLMError('ShapeMismatch', `compress: ${F * H * W} tokens are too many rows for one projection matmul.`);
  }
  if (pl.bytes > 0) {
    if (!args.workspace) {
      throw new WebVLMError('InvalidArgument', `compress: these projections need a workspace of ${pl.bytes} bytes (compressWorkspaceBytes).`, { details: { need: pl.bytes } });
    }
    requireBytes('compress', 'workspace', args.workspace, pl.bytes);
    if (range(args.workspace).lo % ALIGN !== 0) throw new WebVLMError('InvalidArgument', `compress: the workspace offset must be a multiple of ${ALIGN}.`);
    requireDisjoint(args.workspace, 'workspace', args.x, 'x');
    requireDisjoint(args.workspace, 'workspace', args.queries, 'queries');
    requireDisjoint(args.workspace, 'workspace', args.out, 'out');
  }
  requireDisjoint(args.out, 'out', args.x, 'x');
  requireDisjoint(args.out, 'out', args.queries, 'queries');
  for (const name of ['q', 'k', 'v', 'o'] as const) {
    const lin = P[name];
    if (lin) {
      for (const [what, b] of 'int4' in lin ? [['packed', lin.int4.packed], ['scales', lin.int4.scales]] as const : [['w', lin.w]] as const) {
        requireDisjoint(args.out, 'out', b, `proj.${name}.${what}`);
      }
      requireDisjoint(args.out, 'out', lin.bias, `proj.${name}.bias`);
    }
  }

  // ---- everything is valid: record ----
  // Buffer usage is validated per buffer, not per range: within one dispatch the workspace is either
  // only read or only written, and `out` doubles as scratch before the attention writes it.
  const ws = (part: keyof Plan['off'], bytes: number) => subBinding(args.workspace!, pl.off[part], bytes);
  const tokens = F * H * W;
  const qBytes = F * Nq * C * 4;
  const outR = range(args.out);
  // Unprojected query source q0 and its frame stride (elements).
  let q0: Binding | null = learned ? args.queries! : null;
  const q0Stride = learned ? 0 : Nq * C;
  if (pl.off.q0 >= 0) {
    q0 = ws('q0', qBytes);
    recordPool(gpu, rec, args.x, q0, F, H, W, C, s, Hq, Wq);
  }
  let qBuf = q0;
  let qStride = q0Stride;
  if (P.q) {
    let src = q0!;
    if (!learned) {
      // The matmul cannot read and write the workspace in one dispatch: stage q0 in `out`.
      rec.copy(range(q0!).buffer, range(q0!).lo, outR.buffer, outR.lo, qBytes);
      src = { buffer: outR.buffer, offset: outR.lo, size: qBytes };
    }
    qBuf = ws('q', pl.qRows * C * 4);
    project(gpu, rec, P.q, src, qBuf, pl.qRows, C);
    qStride = learned ? 0 : Nq * C;
  }
  const k = P.k ? ws('k', tokens * C * 4) : args.x;
  if (P.k) project(gpu, rec, P.k, args.x, k, tokens, C);
  const v = P.v ? ws('v', tokens * C * 4) : args.x;
  if (P.v) project(gpu, rec, P.v, args.x, v, tokens, C);

  // Residual inside the attention kernel when there is no output projection: from the query
  // registers when the query read is q0 itself, else from q0's buffer.
  let rMode = 0;
  if (args.residual && !P.o) rMode = P.q ? 2 : 1;
  const maxWindow = pl.global ? H * W : Math.min(pl.win, H) * Math.min(pl.win, W);
  // Tokens per tile: about one (token, head) pair per invocation; fewer pairs get more invocations each.
  const T = Math.max(1, Math.min(Math.floor(PAIRS / heads), Math.floor(wgSize / heads), maxWindow));
  const buf = new ArrayBuffer(80);
  const u = new Uint32Array(buf);
  u.set([
    F, H, W, C, heads, hd, Hq, Wq, s, pl.win, pl.stride, pl.pad, pl.global ? 1 : 0,
    qBuf ? 1 : 0, qStride, rMode, q0Stride, T,
  ]);
  new Float32Array(buf)[18] = scale;
  const params = rec.uniform(buf);
  const pipeline = variant === 'row'
    ? gpu.pipelines.get({ name: 'compress', source, entryPoint: 'attend_row' })
    : gpu.pipelines.get({ name: 'compress', source, entryPoint: 'attend', constants: { WG: wgSize } });
  const res = rMode === 2 ? q0! : args.x;
  rec.dispatch(
    pipeline,
    [args.x, k, v, qBuf ?? args.x, res, args.out, params],
    grid(gpu, variant === 'row' ? ceilDiv(F * Nq * heads, 64) : F * Nq),
    `compress/attend-${variant} ${F}x${H}x${W}x${C} h${heads} s${s} ${pl.global ? 'global' : `w${pl.win}/${pl.stride}`}`,
  );
  if (P.o) {
    const o = ws('o', qBytes);
    project(gpu, rec, P.o, args.out, o, F * Nq, C);
    if (args.residual) {
      const total = F * Nq * C;
      const add = gpu.pipelines.get({ name: 'compress', source, entryPoint: 'add_residual' });
      const ap = auxParams(rec, [F, H, W, C, Hq, Wq, s, total, Nq * C, q0Stride]);
      rec.dispatch(add, [o, args.out, ap, q0!], grid(gpu, ceilDiv(total, 256)), `compress/residual ${F}x${Nq}x${C}`);
    } else {
      rec.copy(range(o).buffer, range(o).lo, outR.buffer, outR.lo, qBytes);
    }
  }
}
