/**
 * The preprocessor through the pipeline cache, in Node on Dawn: every shader in shaders/ compiles after its
 * includes are expanded, under every combination of its defines the device supports, and every entry point
 * makes a pipeline; WGSL errors name the chunk and line they stand in; two shaders with the same name do not
 * share a pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { useDawnContext } from '../harness/dawn-suite.ts';
import { expand } from '../../src/gpu/preprocess.ts';
import { PipelineCache } from '../../src/gpu/pipelines.ts';
import { SHADER_CHUNKS } from '../../src/gpu/shader-chunks.ts';
import { isWebVLMError } from '../../src/errors.ts';

const dawn = useDawnContext();
const dir = new URL('../../shaders/', import.meta.url);

test('every shader compiles with its includes, for each define combination, and each entry point makes a pipeline', async (t) => {
  const { gpu, why } = dawn;
  if (!gpu) return t.skip(why);
  const errors = gpu.uncapturedErrors.length;
  const needs: Record<string, boolean> = { SUBGROUPS: gpu.caps.subgroups, F16: gpu.caps.f16 };
  let modules = 0, pipelines = 0;
  const skipped = new Set<string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.wgsl')).sort()) {
    const name = f.replace(/\.wgsl$/, '');
    const src = readFileSync(new URL(f, dir), 'utf8');
    // The defines the shader itself names: a chunk's #if only follows them (sampling never sets SUBGROUPS).
    const names = [...new Set(Array.from(src.matchAll(/^\s*#if\s+!?\s*(\w+)/gm), (m) => m[1]))];
    for (let mask = 0; mask < 1 << names.length; mask++) {
      const defines = Object.fromEntries(names.map((n, i) => [n, (mask >> i) & 1 ? true : undefined]));
      const off = Object.entries(defines).filter(([n, v]) => v && needs[n] === false).map(([n]) => n);
      if (off.length) {
        off.forEach((n) => skipped.add(n));
        continue;
      }
      const spec = { name, source: src, defines };
      await gpu.pipelines.check(spec);
      modules++;
      const { code } = expand(src, defines, { name, chunks: SHADER_CHUNKS });
      for (const m of code.matchAll(/@compute\s+@workgroup_size\([^)]*\)\s*fn\s+(\w+)/g)) {
        await gpu.device.createComputePipelineAsync({ layout: 'auto', compute: { module: gpu.device.createShaderModule({ code }), entryPoint: m[1] } });
        pipelines++;
      }
    }
  }
  t.diagnostic(`${modules} modules, ${pipelines} pipelines${skipped.size ? `; combinations with ${[...skipped].join(', ')} skipped (device lacks them)` : ''}`);
  assert.ok(modules >= 20 && pipelines >= 40);
  assert.deepEqual(gpu.uncapturedErrors.slice(errors), []);
});

test('a WGSL error inside a chunk is reported at the chunk and its line', async (t) => {
  const { gpu, why } = dawn;
  if (!gpu) return t.skip(why);
  const chunks = { 'good.wgsl': 'fn one() -> f32 { return 1.0; }', 'bad.wgsl': '// a chunk\n#include "good.wgsl"\nfn two() -> f32 {\n  return undefined_thing;\n}' };
  const cache = new PipelineCache(gpu.device, chunks);
  gpu.device.pushErrorScope('validation'); // the bad module's own validation error is expected: keep it out of the log
  const source = '@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n#include "bad.wgsl"\n@compute @workgroup_size(1) fn main() { x[0] = one() + two(); }';
  await assert.rejects(cache.check({ name: 'chunk-error', source }), (e: unknown) => {
    assert.ok(isWebVLMError(e, 'ShaderCompile'), String(e));
    assert.match((e as Error).message, /^chunk-error: common\/bad\.wgsl:4:\d+ .*undefined_thing/);
    return true;
  });
  assert.match((await gpu.device.popErrorScope())?.message ?? '', /undefined_thing/);
  await assert.rejects(async () => cache.check({ name: 'k', source: '#include "gone.wgsl"' }), /k:1: unknown include "gone\.wgsl"/);
});

test('two shaders with the same name get their own pipelines', (t) => {
  const { gpu, why } = dawn;
  if (!gpu) return t.skip(why);
  const errors = gpu.uncapturedErrors.length;
  const c = new PipelineCache(gpu.device, { 'v.wgsl': 'const V = 2.0;' });
  const one = '@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n@compute @workgroup_size(1) fn main() { x[0] = 1.0; }';
  const two = '@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n#include "v.wgsl"\n@compute @workgroup_size(1) fn main() { x[0] = V; }';
  const a = c.get({ name: 'same', source: one });
  const b = c.get({ name: 'same', source: two });
  assert.notEqual(a, b);
  assert.equal(c.get({ name: 'same', source: one }), a);
  assert.equal(c.get({ name: 'same', source: `${two}` }), b, 'the same text in another string');
  assert.equal(c.size, 2);
  assert.deepEqual(gpu.uncapturedErrors.slice(errors), []);
});
