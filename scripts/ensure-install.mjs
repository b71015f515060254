#!/usr/bin/env node
/**
 * `predemo` / `pretest`: makes `npm run demo` and `npm test` work on a fresh clone. When node_modules/ was never
 * installed, runs `npm ci` first (the lockfile's exact versions; ~1-2 min from the network). When the lockfile
 * changed since the last install, says so (it does not reinstall behind your back: `npm ci` replaces node_modules/).
 * Dependency-free (plain Node), since it runs before anything is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const installed = join(root, 'node_modules/.package-lock.json'); // written by every npm install / ci
const lock = join(root, 'package-lock.json');

if (!existsSync(installed)) {
  console.log('webvlm: node_modules/ is not installed yet: running npm ci first.');
  // package.json's allowScripts denies onnxruntime-node's postinstall (a NuGet download of CUDA libraries the tests
  // never use) with npm 11.19 (the version here); the variable does the same for npm releases without allowScripts.
  const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: process.env.ONNXRUNTIME_NODE_INSTALL ?? 'skip' };
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, env, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error('webvlm: npm ci failed (see above); fix it and run the command again.');
    process.exit(r.status ?? 1);
  }
} else if (existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs + 1000) {
  console.warn('webvlm: package-lock.json is newer than node_modules/: run `npm ci` if dependencies changed.');
}
