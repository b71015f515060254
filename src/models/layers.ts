/**
 * The small vocabulary of ops the model files are built from: linear layers (f32 or int4 weights,
 * GEMV for ≤ 4 rows, tiled GEMM above), a transient-buffer workspace, and row copies.
 * Model files (siglip.ts, llama.ts, idefics3.ts) call these, never the kernels' variants directly.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, Recorder } from '../gpu/recorder.ts';
import { gemv } from '../kernels/gemv.ts';
import { matmul } from '../kernels/matmul.ts';
import { int4Gemv, INT4_GEMV_MAX_ROWS } from '../kernels/int4_gemv.ts';
import { int4Gemm } from '../kernels/int4_gemm.ts';
import type { Int4GpuWeights } from '../kernels/int4.ts';

/** y = x·Wᵀ (+ b) with W [N, K] in nn.Linear layout, on the GPU as f32 or int4. */
export interface Linear {
  N: number;
  K: number;
  f32?: GPUBuffer;
  int4?: Int4GpuWeights;
  bias?: GPUBuffer;
}

export function linear(gpu: GpuContext, rec: Recorder, lin: Linear, x: Binding, out: Binding, M: number): void {
  if (lin.int4) {
    if (M <= INT4_GEMV_MAX_ROWS) int4Gemv(gpu, rec, { x, w: lin.int4, bias: lin.bias, out, M });
    else int4Gemm(gpu, rec, { a: x, w: lin.int4, bias: lin.bias, out, M });
  } else {
    if (M <= 4) gemv(gpu, rec, { x, w: lin.f32!, bias: lin.bias, out, M, N: lin.N, K: lin.K });
    else matmul(gpu, rec, { a: x, b: lin.f32!, bias: lin.bias, out, M, N: lin.N, K: lin.K });
  }
}

/** Bytes of a linear layer's weights on the GPU. */
export function linearBytes(lin: Linear): number {
  const b = (x?: Binding) => (x ? ('buffer' in x ? x.size ?? x.buffer.size : x.size) : 0);
  return b(lin.f32) + (lin.int4 ? b(lin.int4.packed) + b(lin.int4.scales) : 0) + b(lin.bias);
}

/**
 * Transient activation buffers for one forward pass, drawn from the allocator's pool and given back
 * after the pass is submitted (queue order makes reuse by a later submission safe).
 */
export class Workspace {
  private readonly held: GPUBuffer[] = [];
  constructor(private readonly gpu: GpuContext) {}

  f32(elements: number, label?: string): GPUBuffer {
    const b = this.gpu.allocator.acquire(Math.max(1, elements) * 4, undefined, label);
    this.held.push(b);
    return b;
  }

  release(): void {
    // In reverse, so that the pool (LIFO) hands out the same buffers in the same order next time: the next
    // decode step then finds its bind groups in the cache.
    for (let i = this.held.length - 1; i >= 0; i--) this.gpu.allocator.recycle(this.held[i]);
    this.held.length = 0;
  }
}

/** A byte-range binding of `rows` rows of `cols` f32 starting at row `row0`. */
export function rowsOf(buffer: GPUBuffer, row0: number, rows: number, cols: number): Binding {
  return { buffer, offset: row0 * cols * 4, size: rows * cols * 4 };
}
