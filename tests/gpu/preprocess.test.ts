/**
 * The WGSL preprocessor (src/gpu/preprocess.ts), pure TypeScript: #if / #else / #endif, #include against a chunk
 * registry (nesting, once per shader, cycles, unknown names, #if inside chunks), the line origins that compile
 * errors are mapped through, and the real registry (src/gpu/shader-chunks.ts) against shaders/common/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describeLine, expand, preprocess, type Chunks } from '../../src/gpu/preprocess.ts';
import { SHADER_CHUNKS } from '../../src/gpu/shader-chunks.ts';
import { WebVLMError } from '../../src/errors.ts';

const lines = (code: string) => code.split('\n').filter((l) => l.trim() !== '');

/** WGSL wants `enable` before any declaration: so an include that sits above an enable breaks the shader. */
function enablesFirst(code: string): boolean {
  const significant = code.split('\n').map((l) => l.replace(/\/\/.*$/, '').trim()).filter((l) => l !== '');
  const lastEnable = significant.findLastIndex((l) => /^enable\s/.test(l));
  return significant.slice(0, lastEnable + 1).every((l) => /^enable\s/.test(l));
}

function rejects(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WebVLMError, `a WebVLMError, got ${String(e)}`);
    assert.equal(e.code, 'ShaderCompile');
    assert.match(e.message, pattern);
    return true;
  });
}

test('#if / #if ! / #else / #endif, nested; defines that are false, 0 or undefined are off', () => {
  const src = ['a', '#if X', 'x', '#if !Y', 'notY', '#else', 'y', '#endif', '#else', 'notX', '#endif', 'z'].join('\n');
  assert.deepEqual(lines(preprocess(src, { X: true })), ['a', 'x', 'notY', 'z']);
  assert.deepEqual(lines(preprocess(src, { X: 1, Y: 2 })), ['a', 'x', 'y', 'z']);
  for (const off of [false, 0, undefined]) assert.deepEqual(lines(preprocess(src, { X: off })), ['a', 'notX', 'z']);
  assert.deepEqual(lines(preprocess('#if X // why\nx\n#endif // X\n', { X: true })), ['x'], 'trailing comments');
});

test('#include inserts the chunk where it stands, nested includes too', () => {
  const chunks: Chunks = { 'a.wgsl': 'a1\n#include "b.wgsl"\na2', 'b.wgsl': 'b1' };
  assert.deepEqual(lines(preprocess('s1\n#include "a.wgsl"\ns2', {}, chunks)), ['s1', 'a1', 'b1', 'a2', 's2']);
});

test('a chunk enters a shader once: repeated and diamond includes are skipped', () => {
  const chunks: Chunks = { 'l.wgsl': 'left\n#include "base.wgsl"', 'r.wgsl': 'right\n#include "base.wgsl"', 'base.wgsl': 'base' };
  const src = '#include "l.wgsl"\n#include "r.wgsl"\n#include "base.wgsl"\n#include "l.wgsl"';
  assert.deepEqual(lines(preprocess(src, {}, chunks)), ['left', 'base', 'right']);
});

test('an include cycle is an error that shows the chain', () => {
  const chunks: Chunks = { 'a.wgsl': '#include "b.wgsl"', 'b.wgsl': '#include "c.wgsl"', 'c.wgsl': '#include "a.wgsl"', 'self.wgsl': '#include "self.wgsl"' };
  rejects(() => preprocess('#include "a.wgsl"', {}, chunks), /common\/c\.wgsl:1: include cycle: a\.wgsl → b\.wgsl → c\.wgsl → a\.wgsl/);
  rejects(() => preprocess('#include "self.wgsl"', {}, chunks), /include cycle: self\.wgsl → self\.wgsl/);
});

test('an unknown include is a ShaderCompile error naming it, the shader and the line', () => {
  rejects(() => expand('x\n#include "nope.wgsl"', {}, { name: 'norm', chunks: { 'a.wgsl': '' } }), /norm:2: unknown include "nope\.wgsl" \(shaders\/common\/ has: a\.wgsl\)/);
  rejects(() => preprocess('#include "toString"', {}, {}), /unknown include "toString"/);
  rejects(() => expand('#include "x.wgsl"', {}, { chunks: { 'a.wgsl': '#include "missing.wgsl"' , 'x.wgsl': '#include "a.wgsl"' } }), /common\/a\.wgsl:1: unknown include "missing\.wgsl"/);
});

test('includes in an inactive branch are not resolved', () => {
  assert.deepEqual(lines(preprocess('#if X\n#include "nope.wgsl"\n#endif\nok', {}, {})), ['ok']);
  const chunks: Chunks = { 'a.wgsl': 'A' };
  // Skipped in the inactive branch, so the active one still includes it.
  assert.deepEqual(lines(preprocess('#if X\n#include "a.wgsl"\n#else\n#include "a.wgsl"\n#endif', {}, chunks)), ['A']);
});

test('#if inside a chunk sees the including shader\'s defines', () => {
  const chunks: Chunks = { 'r.wgsl': '#if SUBGROUPS\nsub\n#else\ntree\n#endif\n#include "n.wgsl"', 'n.wgsl': '#if !F16\nf32\n#endif' };
  assert.deepEqual(lines(preprocess('#include "r.wgsl"', { SUBGROUPS: true }, chunks)), ['sub', 'f32']);
  assert.deepEqual(lines(preprocess('#include "r.wgsl"', { F16: true }, chunks)), ['tree']);
});

test('an #if must close in the file that opened it', () => {
  rejects(() => preprocess('#if X\n#include "a.wgsl"\n#endif', { X: true }, { 'a.wgsl': '#if Y\ny' }), /common\/a\.wgsl:1: #if without #endif/);
  rejects(() => preprocess('#if X\n#include "a.wgsl"', { X: true }, { 'a.wgsl': '#endif' }), /common\/a\.wgsl:1: #endif without #if/);
  rejects(() => preprocess('x\n#else', {}), /shader:2: #else without #if/);
  rejects(() => expand('#if X\nx', {}, { name: 'k' }), /k:1: #if without #endif/);
});

test('malformed and unknown directives are ShaderCompile errors', () => {
  rejects(() => preprocess('#if\n#endif', {}), /#if takes NAME or !NAME/);
  rejects(() => preprocess('#if A && B\n#endif', {}), /#if takes NAME or !NAME, got "A && B"/);
  rejects(() => preprocess('#ifdef X\n#endif', {}), /unknown directive #ifdef/);
  rejects(() => preprocess('#define X 1', {}), /unknown directive #define/);
  rejects(() => preprocess('#include <a.wgsl>', {}, { 'a.wgsl': '' }), /#include takes "name\.wgsl"/);
  rejects(() => preprocess('#endif X', {}), /#endif takes nothing/);
  rejects(() => preprocess('# 1', {}), /not a directive/);
});

test('origin maps every output line to its file and line, through includes and dropped directives', () => {
  const chunks: Chunks = { 'c.wgsl': '// c\n#if X\ncx\n#endif\ncy' };
  const { code, origin } = expand('s1\n#if X\n#include "c.wgsl"\n#endif\ns5', { X: true }, { name: 'k', chunks });
  const out = code.split('\n');
  assert.deepEqual(out, ['s1', '// c', 'cx', 'cy', 's5']);
  assert.equal(origin.length, out.length);
  assert.deepEqual(origin.map((o, i) => `${describeLine(origin, i + 1)}=${out[i]}`), ['k:1=s1', 'common/c.wgsl:1=// c', 'common/c.wgsl:3=cx', 'common/c.wgsl:5=cy', 'k:5=s5']);
  assert.equal(describeLine(origin, 99), 'line 99');
});

test('the chunk registry is exactly shaders/common/, and every shader expands with any of its defines', () => {
  const dir = new URL('../../shaders/', import.meta.url);
  const files = readdirSync(new URL('common/', dir)).filter((f) => f.endsWith('.wgsl')).sort();
  assert.deepEqual(Object.keys(SHADER_CHUNKS).sort(), files);
  for (const f of files) assert.equal(SHADER_CHUNKS[f], readFileSync(new URL(`common/${f}`, dir), 'utf8'), f);
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.wgsl'))) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    const names = [...new Set(Array.from([src, ...Object.values(SHADER_CHUNKS)].join('\n').matchAll(/^\s*#if\s+!?\s*(\w+)/gm), (m) => m[1]))];
    for (let mask = 0; mask < 1 << names.length; mask++) {
      const defines = Object.fromEntries(names.map((n, i) => [n, (mask >> i) & 1 ? true : undefined]));
      const { code } = expand(src, defines, { name: f, chunks: SHADER_CHUNKS });
      assert.doesNotMatch(code, /^\s*#/m, `${f}: no directive left`);
      assert.ok(enablesFirst(code), `${f}: enable directives come before every declaration`);
    }
  }
});

test('chunks hold no bindings or enable directives (they would break an including shader)', () => {
  for (const [name, text] of Object.entries(SHADER_CHUNKS)) {
    assert.doesNotMatch(text, /@binding|@group/, `${name}: no bindings`);
    assert.doesNotMatch(text, /^\s*(enable|requires)\s/m, `${name}: no enable/requires`);
  }
});
