/**
 * Registers node:test tests for a kernel-case module:
 *  - every case in Chromium on SwiftShader (subgroups, timestamps, no f16);
 *  - f16 cases (and cases marked `node: true`) in Node on Dawn/lavapipe, where it offers shader-f16.
 * The adapter and its features are printed at the start of each suite.
 */
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, openHarness, testOrigin } from './browser.ts';
import { useDawnContext } from './dawn-suite.ts';
import { runCaseOn, type KernelCase } from './cases.ts';
import type { CaseResult } from './page.ts';

const CASE_TIMEOUT = 300_000;

export async function runKernelCases(modulePath: string): Promise<void> {
  const mod = (await import(new URL(`../../${modulePath}`, import.meta.url).href)) as { cases: KernelCase[] };

  describe(`${modulePath} — Chromium WebGPU (SwiftShader)`, () => {
    let browser: Browser;
    let page: Page;
    let server: { close(): Promise<void> };
    before(async () => {
      const o = await testOrigin();
      server = o;
      browser = await launchChromium();
      page = await openHarness(browser, o.origin);
      const info = await page.evaluate(() => (window as any).__harness.caps());
      console.log(`# adapter: ${info.line}; variants ${JSON.stringify(info.variants)}`);
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });
    for (const kc of mod.cases) {
      test(kc.name, { timeout: CASE_TIMEOUT }, async (t) => {
        const r: CaseResult = await page.evaluate(([p, n]) => (window as any).__harness.runCase(p, n), [modulePath, kc.name] as const);
        for (const l of r.logs) t.diagnostic(l);
        if (r.status === 'skip') return t.skip(r.message);
        if (r.status === 'fail') throw new Error(r.message);
      });
    }
  });

  const nodeCases = mod.cases.filter((c) => c.node || c.needs?.includes('f16'));
  if (!nodeCases.length) return;
  describe(`${modulePath} — Node Dawn (lavapipe)`, () => {
    const dawn = useDawnContext();
    for (const kc of nodeCases) {
      test(kc.name, { timeout: CASE_TIMEOUT }, async (t) => {
        const { gpu, why } = dawn;
        if (!gpu) return t.skip(`no Dawn adapter: ${why}`);
        const skip = await runCaseOn(gpu, kc, (m) => t.diagnostic(m));
        if (skip) t.skip(skip);
      });
    }
  });
}
