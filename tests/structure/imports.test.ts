/**
 * Every import in src/ points down the layer order written in docs/CONVENTIONS.md (the ```layers block), or stays
 * within its layer. An import up the order (kernels → models, models → engine, engine → api, …) fails here, naming
 * the file, the line and both layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function layers(): string[][] {
  const doc = readFileSync(join(root, 'docs/CONVENTIONS.md'), 'utf8');
  const m = /```layers\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'docs/CONVENTIONS.md has a ```layers block');
  return m[1].trim().split('\n').map((l) => l.trim().split(/\s+/));
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : /\.ts$/.test(n) ? [p] : [];
  });
}

/** The layer index of a repo-relative path: the longest matching entry (a file, or a folder prefix). */
function layerOf(order: string[][], rel: string): number {
  let best = -1, bestLen = -1;
  order.forEach((entries, i) => {
    for (const e of entries) {
      if ((rel === e || rel.startsWith(`${e}/`)) && e.length > bestLen) {
        best = i;
        bestLen = e.length;
      }
    }
  });
  return best;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.[^'"?]+)|import\(\s*['"](\.[^'"?]+)['"]\s*\)|new URL\(\s*['"](\.[^'"?]+\.ts)['"]/g;

test('every src/ file belongs to a layer of docs/CONVENTIONS.md', () => {
  const order = layers();
  const lost = files(join(root, 'src')).map((f) => relative(root, f)).filter((r) => !r.endsWith('.d.ts') && layerOf(order, r) < 0);
  assert.deepEqual(lost, [], `files outside every layer: ${lost.join(', ')}`);
});

test('no import in src/ points up the layer order', () => {
  const order = layers();
  const up: string[] = [];
  let checked = 0;
  for (const f of files(join(root, 'src'))) {
    const rel = relative(root, f);
    const from = layerOf(order, rel);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const target = relative(root, resolve(dirname(f), spec));
      if (!target.startsWith('src/')) continue; // shaders, package files
      const to = layerOf(order, target);
      checked++;
      if (to > from) {
        const line = text.slice(0, m.index).split('\n').length + 1;
        up.push(`${rel}:${line} imports ${target} (${order[from].join(' ')} → ${order[to].join(' ')})`);
      }
    }
  }
  assert.ok(checked > 100, `found ${checked} imports`);
  assert.deepEqual(up, [], `imports pointing up a layer:\n${up.join('\n')}`);
});

test('the check itself catches an upward import (kernels → models)', () => {
  const order = layers();
  assert.ok(layerOf(order, 'src/kernels/x.ts') < layerOf(order, 'src/models/idefics3/model.ts'));
  assert.ok(layerOf(order, 'src/engine/engine.ts') < layerOf(order, 'src/api/engine.ts'));
  assert.equal(layerOf(order, 'src/errors.ts'), 0);
});
