/**
 * webvlm installed from a git URL, as `npm install git+https://…/webvlm.git` does it: npm clones the repository,
 * installs its devDependencies in the clone, runs `prepare` (scripts/prepare.mjs builds dist/ there), packs the
 * clone by package.json `files` and installs that. Here the repository is a throwaway git repo holding the current
 * working tree (tracked and untracked-but-not-ignored files, committed in the copy, never in this checkout), and the
 * URL is `git+file://` to it. The installed package then runs the README quick start through a fresh Vite app in
 * Chromium, like the tarball route (consumer.test.ts). 30-70 s on 2 cores, most of it npm installing the
 * devDependencies into its clone (from the local npm cache with --prefer-offline).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium, ROOT } from '../harness/browser.ts';
import {
  buildAndPreview, checkQuickstart, NPM_QUIET, openPage, QUICKSTART_MODEL, quickstartAnswer, run, stopwatch, TINY_CHECKPOINT, typecheck, writeQuickstartApp,
} from './consumer-app.ts';

let work: string;
let browser: Browser | undefined;
let closePreview: (() => Promise<void>) | undefined;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'webvlm-git-'));
});
after(async () => {
  await browser?.close();
  await closePreview?.();
  if (work && !process.env.WEBVLM_KEEP_CONSUMER) rmSync(work, { recursive: true, force: true });
});

/** The working tree's files as git sees them (tracked + untracked, minus .gitignore'd), or null outside a checkout. */
function workingTreeFiles(): string[] | null {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: 1 << 26 });
    return out.toString('utf8').split('\0').filter((f) => f && existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile());
  } catch {
    return null;
  }
}

test('npm install git+file://<a clone of the working tree> builds dist/ on prepare → the quick start answers in Chromium', { timeout: 10 * 60_000 }, async (t) => {
  const files = workingTreeFiles();
  if (!files) return t.skip('not a git checkout: nothing to clone');
  const { step, timings } = stopwatch();

  // 1. A git repository with the working tree committed (in the copy only).
  const repo = join(work, 'webvlm');
  await step('git repo of the working tree', async () => {
    for (const f of files) {
      mkdirSync(dirname(join(repo, f)), { recursive: true });
      copyFileSync(join(ROOT, f), join(repo, f));
    }
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=webvlm test', '-c', 'user.email=test@webvlm.invalid', ...args], { cwd: repo, stdio: 'pipe' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'working tree snapshot');
  });
  assert.ok(!existsSync(join(repo, 'dist')), 'the clone has no dist/ (it is built on install)');

  // 2. A fresh app installs it by git URL (npm: clone, install devDependencies, prepare, pack, install).
  const app = join(work, 'app');
  writeQuickstartApp(app);
  const install = await step('npm install git+file://… (clone, devDependencies, prepare → build, pack)', () =>
    run('npm', ['install', ...NPM_QUIET, `git+file://${repo}`], { cwd: app, maxBuffer: 1 << 26 }));
  if (install.stderr.trim()) t.diagnostic(`npm said: ${install.stderr.trim().split('\n').slice(0, 6).join(' | ')}`);
  const installed = join(app, 'node_modules/webvlm');
  for (const f of ['dist/webvlm.js', 'dist/webvlm.worker.js', 'dist/types/index.d.ts', 'package.json']) {
    assert.ok(existsSync(join(installed, f)), `the git install has ${f} (built by prepare)`);
  }
  const top = readdirSync(installed).sort();
  assert.deepEqual(top.filter((f) => !['dist', 'package.json', 'README.md', 'LICENSE'].includes(f)), [], `only the published files are installed (${top.join(', ')})`);
  assert.ok(!existsSync(join(installed, 'node_modules')), 'no devDependencies came along');

  // 3. Same as the tarball route from here: types, Vite build, one chat in Chromium.
  await step('tsc (consumer)', () => typecheck(app));
  const server = await step('vite build + preview (consumer)', () => buildAndPreview(app));
  closePreview = server.close;
  browser = await launchChromium();
  const r = await openPage(browser, { repo: QUICKSTART_MODEL, dir: TINY_CHECKPOINT });
  const res = await step('chat in Chromium (load + answer)', async () => {
    await r.page.goto(`${server.origin}/`);
    return quickstartAnswer(r);
  });
  t.diagnostic(`finish ${res.finishReason}, ${res.usage.completionTokens} tokens; answer ${JSON.stringify(res.answer.slice(0, 80))}`);
  checkQuickstart(r, res);
  console.log(`# timings (ms): ${JSON.stringify(timings)}`);
});
