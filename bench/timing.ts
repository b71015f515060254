/** Timing helpers for benchmarks: GPU timestamps when the device has them, else wall clock around a sync. */
import type { GpuContext } from '../src/gpu/context.ts';
import type { Recorder } from '../src/gpu/recorder.ts';

export interface Timing {
  /** Median milliseconds per iteration. */
  ms: number;
  /** 'gpu' (timestamp queries: kernel time only) or 'wall' (submit → done, includes overhead). */
  clock: 'gpu' | 'wall';
  samples: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Times `record` (which records one iteration into the recorder) `iters` times after `warmup` runs.
 * Uses wall clock around submit + onSubmittedWorkDone with `batch` iterations per submit, so
 * dispatch overhead is amortised the same way for us and for peers timed with `timeWall`.
 */
export async function timeKernel(gpu: GpuContext, record: (rec: Recorder) => void, opts: { warmup?: number; iters?: number; batch?: number } = {}): Promise<Timing> {
  const { warmup = 2, iters = 7, batch = 4 } = opts;
  const rec = gpu.recorder('bench');
  for (let i = 0; i < warmup; i++) {
    record(rec);
    rec.submit();
  }
  await gpu.sync();
  const samples: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    for (let b = 0; b < batch; b++) record(rec);
    rec.submit();
    await gpu.sync();
    samples.push((performance.now() - t0) / batch);
  }
  rec.destroy();
  return { ms: median(samples), clock: 'wall', samples };
}

/** Wall-clock timing of any async step (a peer's session.run, a whole forward). */
export async function timeWall(fn: () => Promise<unknown>, opts: { warmup?: number; iters?: number } = {}): Promise<Timing> {
  const { warmup = 2, iters = 7 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return { ms: median(samples), clock: 'wall', samples };
}
