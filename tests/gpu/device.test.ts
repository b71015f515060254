/** Device acquisition in a real browser: what we get with WebGPU, and the typed error without it. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { launchChromium, openHarness, testOrigin } from '../harness/browser.ts';

let server: { origin: string; close(): Promise<void> };
before(async () => {
  server = await testOrigin();
});
after(async () => server?.close());

describe('Chromium with WebGPU (SwiftShader)', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => browser?.close());

  test('acquires a device with the adapter limits and optional features', async (t) => {
    const page = await openHarness(browser, server.origin);
    const info = await page.evaluate(() => (window as any).__harness.caps());
    t.diagnostic(`adapter: ${info.line}`);
    console.log(`# adapter: ${info.line}`);
    assert.equal(info.caps.featureLevel, 'core');
    assert.ok(info.caps.software, 'SwiftShader is recognised as a software adapter');
    // We ask for the adapter's limits, not the defaults (128 MiB binding, 16 KiB workgroup memory).
    assert.ok(info.caps.limits.maxStorageBufferBindingSize > 128 * 1024 * 1024, `binding limit ${info.caps.limits.maxStorageBufferBindingSize}`);
    assert.ok(info.caps.limits.maxComputeWorkgroupStorageSize >= 32 * 1024);
    assert.ok(info.caps.subgroups, 'SwiftShader offers subgroups');
    assert.ok(info.caps.timestampQuery, 'SwiftShader offers timestamp-query');
    assert.equal(info.variants.gemv, 'row', 'CPU adapters pick one-row-per-invocation GEMV');
    await page.close();
  });

  test('disableFeatures yields a device without subgroups', async () => {
    const page = await openHarness(browser, server.origin);
    const info = await page.evaluate(() => (window as any).__harness.caps({ disableFeatures: ['subgroups'] }));
    assert.equal(info.caps.subgroups, false);
    assert.equal(info.variants.subgroups, false);
    await page.close();
  });
});

describe('Chromium compat adapter (ANGLE GLES on llvmpipe)', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium({ adapter: 'gles' });
  });
  after(async () => browser?.close());

  test('falls back to a compatibility adapter and raises its compat limits', async (t) => {
    const page = await openHarness(browser, server.origin);
    const info = await page.evaluate(() => (window as any).__harness.caps({ featureLevel: 'compatibility' }));
    t.diagnostic(`adapter: ${info.line}`);
    console.log(`# adapter: ${info.line}`);
    assert.equal(info.caps.featureLevel, 'compatibility');
    assert.ok(info.caps.limits.maxComputeInvocationsPerWorkgroup >= 256, 'compat default of 128 invocations was raised');
    assert.ok(info.caps.limits.maxStorageBuffersPerShaderStage > 8, 'compat default of 8 storage buffers was raised');
    await page.close();
  });
});

describe('Chromium without WebGPU', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchChromium({ webgpu: false, extraArgs: ['--disable-features=WebGPU'] });
  });
  after(async () => browser?.close());

  test('acquiring a device throws WebGPUUnavailable with a clear message', async () => {
    const page = await openHarness(browser, server.origin);
    const err = await page.evaluate(() => (window as any).__harness.acquireError());
    assert.ok(err, 'acquiring a device must fail without WebGPU');
    assert.equal(err.name, 'WebVLMError');
    assert.equal(err.code, 'WebGPUUnavailable');
    assert.match(err.message, /WebGPU/);
    assert.match(err.hint, /browser/i);
    await page.close();
  });
});
