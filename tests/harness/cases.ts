/**
 * Kernel test cases that run unchanged in Chromium (through the harness page) and in Node (Dawn).
 * A case builds inputs, runs kernels on `ctx.gpu`, reads results back and compares them with a
 * TypeScript f64 reference in the same JS context; it throws on mismatch.
 */
import type { GpuContext } from '../../src/gpu/context.ts';

export type Need = 'f16' | 'subgroups' | 'timestamp-query';

export interface CaseContext {
  gpu: GpuContext;
  /** A line for the test log (errors measured, variant used, …). */
  log(message: string): void;
}

export interface KernelCase {
  name: string;
  /** Device features the case needs; it is reported as skipped where they are missing. */
  needs?: Need[];
  /** Also run this case in Node on Dawn (lavapipe). f16 cases always do. */
  node?: boolean;
  run(ctx: CaseContext): Promise<void>;
}

export function defineCases(cases: KernelCase[]): KernelCase[] {
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`duplicate case name ${c.name}`);
    names.add(c.name);
  }
  return cases;
}

export function missingNeeds(gpu: GpuContext, needs: Need[] = []): Need[] {
  return needs.filter((n) => (n === 'f16' ? !gpu.caps.f16 : n === 'subgroups' ? !gpu.caps.subgroups : !gpu.caps.timestampQuery));
}

/**
 * Runs one case on a Node/Dawn context: resolves to the reason it was skipped (the device lacks a feature it
 * needs) or null when it passed; throws when it failed, including WebGPU errors the device reported meanwhile.
 */
export async function runCaseOn(gpu: GpuContext, kc: KernelCase, log: (message: string) => void): Promise<string | null> {
  const missing = missingNeeds(gpu, kc.needs);
  if (missing.length) return `device lacks ${missing.join(', ')}`;
  const before = gpu.uncapturedErrors.length;
  await kc.run({ gpu, log });
  await gpu.sync();
  const errs = gpu.uncapturedErrors.slice(before);
  if (errs.length) throw new Error(`WebGPU errors: ${errs.join(' | ')}`);
  return null;
}
