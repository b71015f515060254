/**
 * Per-adapter variant choice (src/gpu/variants.ts): the pure rules, and the start-up probe on the two
 * browser adapters: SwiftShader names itself; the compat adapter on llvmpipe has an empty adapter.info,
 * so the probe must find that it is a CPU adapter (and then the row/register variants are chosen).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { launchChromium, openHarness, testOrigin, type BrowserAdapter } from '../harness/browser.ts';
import { adapterIsAnonymous, chooseVariants, guessSoftware } from '../../src/gpu/variants.ts';
import type { GpuCapabilities } from '../../src/gpu/device.ts';

function caps(over: Partial<GpuCapabilities> = {}): GpuCapabilities {
  return {
    adapter: { vendor: 'nvidia', architecture: 'ampere', device: '', description: '' },
    featureLevel: 'core',
    software: false,
    f16: true,
    subgroups: true,
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    timestampQuery: true,
    limits: {} as GpuCapabilities['limits'],
    features: [],
    ...over,
  };
}

const anonymous = { vendor: '', architecture: '', device: '', description: '' };

describe('chooseVariants', () => {
  test('GPUs get the workgroup-cooperative variants', () => {
    const v = chooseVariants(caps());
    assert.deepEqual(v, { gemv: 'workgroup', norm: 'workgroup', matmul: 'tiled', subgroups: true, f16: true });
  });
  test('CPU adapters get the barrier-free variants', () => {
    const v = chooseVariants(caps({ software: true, subgroupMinSize: 4, subgroupMaxSize: 4, f16: false }));
    assert.deepEqual(v, { gemv: 'row', norm: 'row', matmul: 'register', subgroups: true, f16: false });
  });
  test('subgroups narrower than 4 lanes are not used', () => {
    assert.equal(chooseVariants(caps({ subgroupMinSize: 1 })).subgroups, false);
  });
});

describe('software detection without a name', () => {
  test('an adapter with an empty adapter.info is anonymous (probed); a named or known-software one is not', () => {
    assert.equal(adapterIsAnonymous(caps({ adapter: anonymous })), true);
    assert.equal(adapterIsAnonymous(caps()), false);
    assert.equal(adapterIsAnonymous(caps({ adapter: anonymous, software: true })), false);
  });
  test('fallback guess: anonymous compat adapter without subgroups → CPU; anonymous core adapter → GPU', () => {
    assert.equal(guessSoftware(caps({ adapter: anonymous, featureLevel: 'compatibility', subgroups: false })), true);
    assert.equal(guessSoftware(caps({ adapter: anonymous, featureLevel: 'core' })), false);
    assert.equal(guessSoftware(caps({ featureLevel: 'compatibility', subgroups: false })), false);
  });
});

interface ProbeInfo {
  software: boolean;
  line: string;
  variants: Record<string, unknown>;
  startup: { software: boolean; barrierMs: number; plainMs: number; totalMs: number } | null;
  again: { software: boolean; barrierMs: number; plainMs: number; totalMs: number };
}

async function probeIn(browser: Browser, origin: string, featureLevel: 'core' | 'compatibility'): Promise<ProbeInfo> {
  const page = await openHarness(browser, origin);
  try {
    return await page.evaluate(async (level) => {
      // The page imports the repo's modules through Vite (a computed path keeps TypeScript from resolving it here).
      const src = '/src/gpu/';
      const { GpuContext } = await import(/* @vite-ignore */ `${src}context.ts`);
      const { describeCaps } = await import(/* @vite-ignore */ `${src}device.ts`);
      const { probeSoftwareAdapter } = await import(/* @vite-ignore */ `${src}variants.ts`);
      const gpu = await GpuContext.create({ featureLevel: level });
      const again = await probeSoftwareAdapter(gpu.device);
      const r = { software: gpu.caps.software, line: describeCaps(gpu.caps), variants: { ...gpu.variants }, startup: gpu.softwareProbe, again };
      gpu.destroy();
      return r;
    }, featureLevel);
  } finally {
    await page.close();
  }
}

for (const [adapter, level] of [['swiftshader', 'core'], ['gles', 'compatibility']] as Array<[BrowserAdapter, 'core' | 'compatibility']>) {
  describe(`start-up probe in Chromium (${adapter})`, () => {
    let browser: Browser;
    let server: { origin: string; close(): Promise<void> };
    before(async () => {
      server = await testOrigin();
      browser = await launchChromium({ adapter });
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });
    test('is recognised as a CPU adapter and gets the CPU variants', async (t) => {
      const info = await probeIn(browser, server.origin, level);
      const fmt = (p: ProbeInfo['again']) => `barriers ${p.barrierMs.toFixed(2)} ms vs plain ${p.plainMs.toFixed(2)} ms (${p.totalMs.toFixed(1)} ms in all)`;
      t.diagnostic(`${info.line}; start-up probe: ${info.startup ? fmt(info.startup) : 'not run (named adapter)'}; probe again: ${fmt(info.again)}`);
      assert.equal(info.software, true);
      assert.equal(info.again.software, true, 'the probe itself says CPU');
      if (adapter === 'gles') assert.ok(info.startup, 'the anonymous compat adapter is probed at start-up');
      else assert.equal(info.startup, null, 'SwiftShader names itself: no probe at start-up');
      assert.equal(info.variants.norm, 'row');
      assert.equal(info.variants.gemv, 'row');
      assert.equal(info.variants.matmul, 'register');
    });
  });
}
