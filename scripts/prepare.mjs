#!/usr/bin/env node
/**
 * npm's `prepare` hook. It runs in two very different situations:
 *  - the repo's own `npm ci` / `npm install` (development, CI): nothing to do — the demo and the tests run from
 *    src/, and `npm pack` / `npm publish` build through `prepack`. Skipped, so a broken build can never fail CI's
 *    install and the install costs nothing extra.
 *  - installing webvlm from a git URL (`npm install git+https://…/webvlm.git`): npm clones the repo, installs its
 *    devDependencies there and runs `prepare` before packing the clone, so this is where dist/ must be built.
 *    npm marks that clone with `_PACOTE_NO_PREPARE_` (its `npm install` step) and runs the second `prepare` (its
 *    pack step) inside its cache (`…/_cacache/tmp/git-clone…`). pnpm, yarn and bun do the same with their own
 *    clones; this repo is developed with npm, so another client running `prepare` means a git install too.
 * `WEBVLM_PREPARE=build` / `WEBVLM_PREPARE=skip` force either; `WEBVLM_PREPARE_DRY_RUN=1` only says what it would do.
 * A build whose dist/ is newer than every input is skipped.
 * No dependencies: this runs before anything may be installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = process.env;
const agent = env.npm_config_user_agent ?? '';

function why() {
  if (env.WEBVLM_PREPARE === 'build') return 'WEBVLM_PREPARE=build';
  if (env.WEBVLM_PREPARE === 'skip') return null;
  if (env._PACOTE_NO_PREPARE_) return 'installed from git (npm)';
  if (/[\\/]_cacache[\\/]tmp[\\/]git-clone/.test(root)) return 'installed from git (npm pack step)';
  if (agent && !agent.startsWith('npm/')) return `installed from git (${agent.split(' ')[0]})`;
  return null;
}

/** Newest modification time under the build's inputs. */
function newestInput() {
  let newest = 0;
  const walk = (p) => {
    if (!existsSync(p)) return;
    const s = statSync(p);
    if (s.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
    else newest = Math.max(newest, s.mtimeMs);
  };
  for (const p of ['src', 'shaders', 'package.json', 'vite.config.ts', 'tsconfig.json', 'tsconfig.build.json']) walk(join(root, p));
  return newest;
}

const reason = why();
if (!reason) {
  console.log('webvlm prepare: development install, dist/ not built (npm run build builds it; npm pack builds it first).');
  process.exit(0);
}
const outputs = ['dist/webvlm.js', 'dist/webvlm.worker.js', 'dist/types/index.d.ts'].map((f) => join(root, f));
if (env.WEBVLM_PREPARE !== 'build' && outputs.every(existsSync) && Math.min(...outputs.map((f) => statSync(f).mtimeMs)) > newestInput()) {
  console.log(`webvlm prepare (${reason}): dist/ is up to date.`);
  process.exit(0);
}
console.log(`webvlm prepare (${reason}): building dist/${env.WEBVLM_PREPARE_DRY_RUN ? ' (dry run: not done)' : ''}.`);
if (env.WEBVLM_PREPARE_DRY_RUN) process.exit(0);
execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
