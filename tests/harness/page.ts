/**
 * Browser side of the test harness: Playwright calls `window.__harness.*` to run kernel cases (and
 * other in-browser tests) against this page's WebGPU device.
 */
import { GpuContext } from '../../src/gpu/context.ts';
import { describeCaps, type AcquireOptions } from '../../src/gpu/device.ts';
import { missingNeeds, type KernelCase } from './cases.ts';

const contexts = new Map<string, Promise<GpuContext>>();

function context(opts: AcquireOptions = {}): Promise<GpuContext> {
  const key = JSON.stringify(opts);
  let c = contexts.get(key);
  if (!c) {
    c = GpuContext.create(opts);
    contexts.set(key, c);
    c.catch(() => contexts.delete(key));
  }
  return c;
}

export interface CaseResult {
  status: 'pass' | 'fail' | 'skip';
  message?: string;
  logs: string[];
  ms: number;
}

async function runCase(modulePath: string, name: string, opts: AcquireOptions = {}): Promise<CaseResult> {
  const logs: string[] = [];
  const t0 = performance.now();
  try {
    const gpu = await context(opts);
    const mod = (await import(/* @vite-ignore */ `/${modulePath}`)) as { cases: KernelCase[] };
    const kc = mod.cases.find((c) => c.name === name);
    if (!kc) return { status: 'fail', message: `no case named ${name} in ${modulePath}`, logs, ms: 0 };
    const missing = missingNeeds(gpu, kc.needs);
    if (missing.length) return { status: 'skip', message: `device lacks ${missing.join(', ')}`, logs, ms: 0 };
    const before = gpu.uncapturedErrors.length;
    await kc.run({ gpu, log: (m) => logs.push(m) });
    await gpu.sync();
    const errs = gpu.uncapturedErrors.slice(before);
    if (errs.length) return { status: 'fail', message: `WebGPU errors: ${errs.join(' | ')}`, logs, ms: performance.now() - t0 };
    return { status: 'pass', logs, ms: performance.now() - t0 };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { status: 'fail', message: `${err.code ? `[${err.code}] ` : ''}${err.message}\n${err.stack ?? ''}`, logs, ms: performance.now() - t0 };
  }
}

async function caps(opts: AcquireOptions = {}) {
  const gpu = await context(opts);
  return { caps: gpu.caps, variants: gpu.variants, line: describeCaps(gpu.caps) };
}

/** What acquiring a device throws here (for the "no WebGPU" test). */
async function acquireError() {
  try {
    const gpu = await GpuContext.create();
    gpu.destroy();
    return null;
  } catch (e) {
    const err = e as Error & { code?: string; hint?: string };
    return { name: err.name, code: err.code, message: err.message, hint: err.hint };
  }
}

(window as unknown as { __harness: unknown }).__harness = { runCase, caps, acquireError };
document.getElementById('status')!.textContent = 'ready';
