/**
 * Node side: a Vite server for the repo (shared across test files when tests/run.mjs started one)
 * and Chromium with WebGPU on a software adapter, driven by Playwright.
 * Recipe and flags: ../shared/webgpu-on-cpu.md.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

export type BrowserAdapter = 'swiftshader' | 'gles';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function chromiumPath(): string {
  const p = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(p)) throw new Error(`Chromium not found at ${p}: install Debian's chromium (bash .ci/run does) or set CHROMIUM_PATH.`);
  return p;
}

export async function launchChromium(opts: { webgpu?: boolean; adapter?: BrowserAdapter; extraArgs?: string[] } = {}): Promise<Browser> {
  const args = ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
  if (opts.webgpu !== false) args.push('--enable-unsafe-webgpu');
  if (opts.adapter === 'gles') args.push('--use-webgpu-adapter=opengles', '--use-angle=gl-egl');
  args.push(...(opts.extraArgs ?? []));
  return chromium.launch({ executablePath: chromiumPath(), args });
}

/** The origin serving the repo through Vite: the shared one from tests/run.mjs, or a new one. */
export async function testOrigin(): Promise<{ origin: string; close(): Promise<void> }> {
  if (process.env.WEBVLM_TEST_ORIGIN) return { origin: process.env.WEBVLM_TEST_ORIGIN, close: async () => {} };
  const { startViteServer } = await import('./vite-server.ts');
  return startViteServer();
}

export async function openHarness(browser: Browser, origin: string): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${origin}/tests/harness/page.html`);
  await page.waitForFunction(() => (window as unknown as { __harness?: unknown }).__harness !== undefined, undefined, { timeout: 60_000 });
  return page;
}

export { ROOT };
