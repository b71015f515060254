#!/usr/bin/env node
/**
 * After `tsc -p tsconfig.build.json` (which declares every module of src/): keep in dist/types/ only the
 * declarations the public entry `index.d.ts` reaches through its imports, so the package ships the API's types
 * and not the engine's internals (kernels, GPU plumbing, models). Prints what it kept.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const types = fileURLToPath(new URL('../dist/types', import.meta.url));
const entry = join(types, 'index.d.ts');
if (!existsSync(entry)) throw new Error(`${entry} missing: run tsc -p tsconfig.build.json first`);

// Relative specifiers in `import … from`, `export … from`, `import('…')` and `/// <reference path>`.
const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|<reference\s+path=)["'](\.{1,2}\/[^"']+)["']/g;
const toDts = (p) => p.replace(/\.(?:d\.)?[cm]?[tj]s$/, '') + '.d.ts';

const keep = new Set();
const queue = [entry];
while (queue.length) {
  const file = queue.pop();
  if (keep.has(file)) continue;
  if (!existsSync(file)) throw new Error(`${relative(types, file)} is imported by the public types but was not emitted`);
  keep.add(file);
  for (const m of readFileSync(file, 'utf8').matchAll(SPEC)) queue.push(toDts(resolve(dirname(file), m[1])));
}

let removed = 0;
const sweep = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      sweep(p);
      if (!readdirSync(p).length) rmSync(p, { recursive: true });
    } else if (!keep.has(p)) {
      rmSync(p);
      removed++;
    }
  }
};
sweep(types);
console.log(`dist/types: kept ${keep.size} public declaration files (${[...keep].map((f) => relative(types, f)).sort().join(', ')}), removed ${removed} internal ones`);
