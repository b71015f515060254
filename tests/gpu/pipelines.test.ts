/**
 * The pipeline cache (src/gpu/pipelines.ts), in Node on Dawn: a repeated spec returns the cached pipeline, the
 * same defines and constants in another order share one, and any difference in name, entry point, define or
 * constant value is another pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useDawnContext } from '../harness/dawn-suite.ts';

const source = `
override SCALE: f32 = 1.0;
override BIAS: f32 = 0.0;
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
#if DOUBLE
@compute @workgroup_size(1) fn main() { x[0] = x[0] * 2.0 * SCALE + BIAS; }
#else
@compute @workgroup_size(1) fn main() { x[0] = x[0] * SCALE + BIAS; }
#endif
@compute @workgroup_size(1) fn other() { x[0] = -x[0]; }
`;

const dawn = useDawnContext();

test('pipelines are shared exactly when name, entry point, defines and constants agree', (t) => {
  const { gpu, why } = dawn;
  if (!gpu) return t.skip(why);
  const c = gpu.pipelines;
  const base = c.get({ name: 'pc-test', source, defines: { DOUBLE: true, UNUSED: false }, constants: { SCALE: 2, BIAS: 1 } });
  const n0 = c.size;
  assert.equal(c.get({ name: 'pc-test', source, defines: { DOUBLE: true, UNUSED: false }, constants: { SCALE: 2, BIAS: 1 } }), base);
  assert.equal(c.get({ name: 'pc-test', source, defines: { UNUSED: false, DOUBLE: true }, constants: { BIAS: 1, SCALE: 2 } }), base, 'another order');
  assert.equal(c.get({ name: 'pc-test', source, defines: { DOUBLE: true }, constants: { SCALE: 2, BIAS: 1 } }), base, 'a false define is no define');
  assert.equal(c.size, n0);
  const others = [
    c.get({ name: 'pc-test', source, defines: { DOUBLE: false }, constants: { SCALE: 2, BIAS: 1 } }),
    c.get({ name: 'pc-test', source, defines: { DOUBLE: true }, constants: { SCALE: 3, BIAS: 1 } }),
    c.get({ name: 'pc-test', source, defines: { DOUBLE: true }, constants: { SCALE: 2 } }),
    c.get({ name: 'pc-test', source, entryPoint: 'other', defines: { DOUBLE: true }, constants: { SCALE: 2, BIAS: 1 } }),
    c.get({ name: 'pc-test-2', source, defines: { DOUBLE: true }, constants: { SCALE: 2, BIAS: 1 } }),
  ];
  assert.equal(new Set([base, ...others]).size, 6);
  assert.equal(c.size, n0 + 5);
  assert.deepEqual(gpu.uncapturedErrors, []);
});
