/**
 * The repo's own install stays quiet and offline-of-everything-but-npm: no unknown npm config (an `.npmrc` key npm
 * does not know is warned about on every command), onnxruntime-node's postinstall (a NuGet download) denied by
 * package.json `allowScripts` and every other dependency script reviewed, and `prepare` (scripts/prepare.mjs) a
 * no-op on a development install but a build when npm prepares a git clone. A few seconds; the real installs are
 * git-install.test.ts (git URL) and the README's fresh-clone `npm ci` (measured by hand: 14 s from the npm cache).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../harness/browser.ts';
import { run } from './consumer-app.ts';

test('npm in the repo: no config warnings, every dependency install script reviewed, onnxruntime-node denied', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false, "onnxruntime-node's postinstall is denied");
  if (existsSync(join(ROOT, '.npmrc'))) {
    const keys = readFileSync(join(ROOT, '.npmrc'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith(';'));
    assert.deepEqual(keys.filter((l) => /^onnxruntime/.test(l)), [], '.npmrc holds no package-specific keys (npm warns "Unknown project config")');
  }
  const { stdout, stderr } = await run('npm', ['install-scripts', 'ls'], { cwd: ROOT });
  assert.doesNotMatch(stderr, /warn/i, `npm warns: ${stderr}`);
  assert.match(stdout, /No packages with unreviewed install scripts/, `unreviewed install scripts: ${stdout}`);
});

test('prepare: nothing on a development install, a build when npm prepares a git clone (skipped when dist/ is fresh)', () => {
  const prepare = (env: Record<string, string>) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|_PACOTE_|WEBVLM_PREPARE)/.test(k)));
    return execFileSync(process.execPath, [join(ROOT, 'scripts/prepare.mjs')], { cwd: ROOT, env: { ...clean, npm_config_user_agent: 'npm/11 node/v20', ...env }, encoding: 'utf8' });
  };
  assert.match(prepare({}), /development install, dist\/ not built/);
  assert.match(prepare({ WEBVLM_PREPARE: 'skip', _PACOTE_NO_PREPARE_: 'git+file:///x' }), /development install/, 'WEBVLM_PREPARE=skip wins');
  // A git clone (npm's install step sets _PACOTE_NO_PREPARE_; its pack step runs in npm's cache): a build, unless
  // dist/ is newer than every input. Dry runs: the build itself is git-install.test.ts.
  assert.match(prepare({ _PACOTE_NO_PREPARE_: 'git+file:///x', WEBVLM_PREPARE_DRY_RUN: '1' }), /installed from git \(npm\)\): (dist\/ is up to date|building dist\/ \(dry run)/);
  assert.match(prepare({ WEBVLM_PREPARE: 'build', WEBVLM_PREPARE_DRY_RUN: '1' }), /WEBVLM_PREPARE=build\): building dist\/ \(dry run/, 'WEBVLM_PREPARE=build always builds');
  assert.match(prepare({ npm_config_user_agent: 'pnpm/9.0.0 npm/? node/v20', WEBVLM_PREPARE_DRY_RUN: '1' }), /installed from git \(pnpm\/9\.0\.0\)/, 'another package manager running prepare is a git install');
});
