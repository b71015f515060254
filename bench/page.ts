/** Browser side of `npm run bench`: runs one bench of one module on this page's device. */
import { GpuContext } from '../src/gpu/context.ts';
import { describeCaps } from '../src/gpu/device.ts';
import type { Bench, BenchResult } from './types.ts';

let gpuPromise: Promise<GpuContext> | null = null;

async function setup(adapter: 'swiftshader' | 'gles') {
  gpuPromise ??= GpuContext.create(adapter === 'gles' ? { featureLevel: 'compatibility' } : {});
  const gpu = await gpuPromise;
  return { line: describeCaps(gpu.caps) };
}

async function run(modulePath: string, name: string, adapter: 'swiftshader' | 'gles'): Promise<{ results: BenchResult[]; logs: string[]; error?: string }> {
  const logs: string[] = [];
  try {
    const gpu = await gpuPromise!;
    const mod = (await import(/* @vite-ignore */ `/${modulePath}`)) as { benches: Bench[] };
    const b = mod.benches.find((x) => x.name === name);
    if (!b) throw new Error(`no bench ${name} in ${modulePath}`);
    const results = await b.run({
      gpu,
      adapter,
      asset: async (n) => {
        const r = await fetch(`/bench/assets-generated/${n}`);
        if (!r.ok) throw new Error(`asset ${n}: HTTP ${r.status}`);
        return r.arrayBuffer();
      },
      log: (m) => logs.push(m),
    });
    return { results, logs };
  } catch (e) {
    return { results: [], logs, error: `${(e as Error).message}\n${(e as Error).stack ?? ''}` };
  }
}

(window as unknown as { __bench: unknown }).__bench = { setup, run };
document.getElementById('status')!.textContent = 'ready';
