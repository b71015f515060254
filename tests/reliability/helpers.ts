/**
 * Node side of the reliability tests: one Chromium (SwiftShader WebGPU) per test file on the reliability page,
 * the random-weight test checkpoint (models/generated/test, written by `npm run predemo`) served either by the Vite
 * test server (`{origin}/hub`) or by a local hub server with fault injection (`startHubServer`, CORS on).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, testOrigin } from '../harness/browser.ts';
import type { ChatOutcome, ChatPlan, ErrorInfo, ImageSpec } from './page.ts';

export const TEST_MODEL_DIR = fileURLToPath(new URL('../../models/generated/test/', import.meta.url));
/** The repo id the Vite test server serves models/generated/test as. */
export const VITE_REPO = 'webvlm/random-smolvlm-test';

/** Writes the test checkpoint when missing (what `npm run predemo` does). */
export async function ensureTestModel(): Promise<void> {
  if (existsSync(join(TEST_MODEL_DIR, 'model.safetensors'))) return;
  const { writeCheckpoint } = await import('../../models/make-checkpoint.ts');
  await writeCheckpoint({ size: 'test', out: TEST_MODEL_DIR });
}

/**
 * A copy of the test checkpoint in a temp dir (big files symlinked), with `edits` applied:
 * a Buffer replaces a file's bytes, null deletes it.
 */
export function modelVariant(edits: Record<string, Buffer | string | null> = {}): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'webvlm-rel-'));
  for (const f of readdirSync(TEST_MODEL_DIR)) {
    if (f in edits) continue;
    if (f.endsWith('.safetensors')) symlinkSync(join(TEST_MODEL_DIR, f), join(dir, f));
    else cpSync(join(TEST_MODEL_DIR, f), join(dir, f));
  }
  for (const [f, v] of Object.entries(edits)) if (v !== null) writeFileSync(join(dir, f), v);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const testConfig = () => JSON.parse(readFileSync(join(TEST_MODEL_DIR, 'config.json'), 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export const testWeights = () => readFileSync(join(TEST_MODEL_DIR, 'model.safetensors'));

export interface Rel {
  browser: Browser;
  page: Page;
  origin: string;
  close(): Promise<void>;
  load(name: string, model: string, opts?: Record<string, unknown>): Promise<LoadOutcome>;
  chat(name: string, plan: ChatPlan): Promise<ChatOutcome>;
  dispose(name: string): Promise<void>;
  eval<T>(fn: string, ...args: unknown[]): Promise<T>;
}

export interface LoadOutcome {
  ok: boolean;
  info?: { model: string; gpuBytes: number; contextLength: number; memory?: { weights: number; kvCache: number; activations: number; total: number } };
  error?: ErrorInfo;
  progress: number;
  downloads?: number;
  ms: number;
}

/** Chromium on the reliability page; `contextOptions` for CSP-free defaults. */
export async function openRel(): Promise<Rel> {
  await ensureTestModel();
  const server = await testOrigin();
  const browser = await launchChromium();
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[page ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${server.origin}/tests/reliability/page.html`);
  await page.waitForFunction(() => (window as unknown as { __rel?: unknown }).__rel !== undefined, undefined, { timeout: 120_000 });
  const call = <T>(path: string, ...args: unknown[]) =>
    page.evaluate(([p, a]) => {
      let f: any = (window as any).__rel; // eslint-disable-line @typescript-eslint/no-explicit-any
      let self: unknown = f;
      for (const k of (p as string).split('.')) {
        self = f;
        f = f[k];
      }
      return f.apply(self, a);
    }, [path, args] as const) as Promise<T>;
  return {
    browser, page, origin: server.origin,
    async close() {
      await browser.close();
      await server.close();
    },
    load: (name, model, opts = {}) => call('load', name, model, opts),
    chat: (name, plan) => call('chat', name, plan),
    dispose: (name) => call('dispose', name),
    eval: (fn, ...args) => call(fn, ...args),
  };
}

/** A user message with optional images (specs built in the page). */
export function userMessage(text: string, images: ImageSpec[] = []) {
  return { role: 'user', content: [...images.map((s) => ({ type: 'image', image: { __img: s }, detail: 'low' })), { type: 'text', text }] };
}

/** Greedy, few tokens, low detail: what every test chat uses (SwiftShader is slow). */
export const quick = (messages: unknown[], extra: Partial<ChatPlan> = {}): ChatPlan => ({ messages, maxTokens: 6, temperature: 0, seed: 1, detail: 'low', ...extra });

/** A minimal PNG header (signature + IHDR) claiming `w`×`h`; the rest is junk, so decoding it would fail. */
export function pngHeader(w: number, h: number): string {
  const b = Buffer.alloc(64);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'ascii');
  b.writeUInt32BE(w, 16);
  b.writeUInt32BE(h, 20);
  b[24] = 8; // bit depth
  b[25] = 6; // RGBA
  return b.toString('base64');
}

/**
 * An animated GIF, 4×4, two frames: the first all `first`, the second all `second` (RGB). LZW with 2-bit minimum code
 * size, a clear code before every pixel so codes stay 3 bits wide.
 */
export function animatedGif(first: [number, number, number], second: [number, number, number]): string {
  const bytes: number[] = [];
  const push = (...xs: number[]) => bytes.push(...xs);
  const u16 = (v: number) => push(v & 255, v >> 8);
  push(...Buffer.from('GIF89a'));
  u16(4);
  u16(4);
  push(0xf1, 0, 0); // global color table, 2 bits → 4 entries
  push(...first, ...second, 0, 0, 0, 255, 255, 255);
  push(0x21, 0xff, 11, ...Buffer.from('NETSCAPE2.0'), 3, 1, 0, 0, 0); // loop forever
  const frame = (index: number) => {
    push(0x21, 0xf9, 4, 0x04, 10, 0, 0, 0); // graphic control: 100 ms, dispose none
    push(0x2c);
    u16(0);
    u16(0);
    u16(4);
    u16(4);
    push(0);
    push(2); // LZW minimum code size
    // Codes (3 bits each): clear(4), then per pixel: index, clear; end(5).
    const codes: number[] = [4];
    for (let i = 0; i < 16; i++) codes.push(index, 4);
    codes.push(5);
    let acc = 0, nbits = 0;
    const data: number[] = [];
    for (const c of codes) {
      acc |= c << nbits;
      nbits += 3;
      while (nbits >= 8) {
        data.push(acc & 255);
        acc >>= 8;
        nbits -= 8;
      }
    }
    if (nbits) data.push(acc & 255);
    push(data.length, ...data, 0);
  };
  frame(0);
  frame(1);
  push(0x3b);
  return Buffer.from(bytes).toString('base64');
}
