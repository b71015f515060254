/**
 * Benchmark modules (`bench/<name>.bench.ts`) export `benches: Bench[]`. `npm run bench` runs every
 * module in real Chromium, once per adapter (SwiftShader and the compat GLES adapter), prints a table
 * and writes bench/results.json. Targets are ratios against peers measured in the same run.
 */
import type { GpuContext } from '../src/gpu/context.ts';

export interface BenchResult {
  /** Stable, descriptive: e.g. "int4 gemv 576→1536 GB/s". The runner prefixes the adapter. */
  name: string;
  value: number;
  unit: string;
}

export interface BenchContext {
  gpu: GpuContext;
  adapter: 'swiftshader' | 'gles';
  /** Fetches a file the Node side prepared (e.g. ONNX models built with onnx-proto) by name. */
  asset(name: string): Promise<ArrayBuffer>;
  log(message: string): void;
}

export interface Bench {
  name: string;
  run(ctx: BenchContext): Promise<BenchResult[]>;
}
