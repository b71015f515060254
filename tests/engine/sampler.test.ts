/**
 * Sampling at the edges of temperature: monotone down to greedy (a tiny positive temperature such as
 * Number.MIN_VALUE once picked the least likely token: l / t overflowed to ∞ and every probability became NaN),
 * and non-finite logits are a typed `NumericalError`, never a token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, sampleToken } from '../../src/engine/sampler.ts';
import { Rng } from '../../src/engine/rng.ts';
import { WebVLMError } from '../../src/errors.ts';

function logits(n: number, seed: number, scale = 8): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => (r.next() - 0.5) * scale);
}

/** How often the argmax is drawn over `draws` seeds at temperature `t`. */
function argmaxRate(l: Float32Array, t: number, draws: number): number {
  const best = argmax(l);
  let hits = 0;
  for (let s = 0; s < draws; s++) if (sampleToken(l.slice(), { temperature: t }, [], new Rng(s)) === best) hits++;
  return hits / draws;
}

test('tiny positive temperatures sample the argmax (Number.MIN_VALUE, 1e-300, 1e-30, 1e-6)', () => {
  for (const seed of [1, 2, 3]) {
    const l = logits(1000, seed);
    const best = argmax(l);
    for (const t of [Number.MIN_VALUE, 1e-300, 1e-30, 1e-6]) {
      for (let s = 0; s < 20; s++) assert.equal(sampleToken(l.slice(), { temperature: t }, [], new Rng(s)), best, `t=${t} seed ${s}`);
    }
  }
});

test('the probability of the argmax grows as the temperature falls (same draws), reaching 1', () => {
  const l = logits(50, 7, 2);
  const temps = [100, 10, 2, 1, 0.5, 0.1, 0.01, 1e-10, Number.MIN_VALUE];
  const rates = temps.map((t) => argmaxRate(l, t, 400));
  for (let i = 1; i < rates.length; i++) assert.ok(rates[i] + 0.02 >= rates[i - 1], `rate at t=${temps[i]} (${rates[i]}) below t=${temps[i - 1]} (${rates[i - 1]})`);
  assert.equal(rates.at(-1), 1);
  assert.ok(rates[0] < 0.2, `a hot temperature spreads the draws (${rates[0]})`);
});

test('huge logits and temperatures stay finite: (l − max) / t, never l / t', () => {
  const l = new Float32Array([3e38, -3e38, 1e38, 0]);
  for (const t of [Number.MIN_VALUE, 1, 1e300]) {
    const tok = sampleToken(l.slice(), { temperature: t }, [], new Rng(1));
    assert.ok(tok >= 0 && tok < 4, `t=${t} → ${tok}`);
  }
  assert.equal(sampleToken(l.slice(), { temperature: Number.MIN_VALUE }, [], new Rng(1)), 0);
});

test('tied best logits share the draws at a tiny temperature (both appear, nothing else)', () => {
  const l = new Float32Array([1, 5, 5, 2]);
  const seen = new Set<number>();
  for (let s = 0; s < 200; s++) seen.add(sampleToken(l.slice(), { temperature: 1e-30 }, [], new Rng(s)));
  assert.deepEqual([...seen].sort(), [1, 2]);
});

test('NaN or +∞ logits are NumericalError (greedy and sampling), not a token', () => {
  for (const bad of [NaN, Infinity]) {
    const l = logits(100, 3);
    l[42] = bad;
    for (const temperature of [0, 0.7]) {
      assert.throws(() => sampleToken(l.slice(), { temperature }, [], new Rng(1)), (e: WebVLMError) => e.code === 'NumericalError' && e.message.includes('42'), `${bad} t=${temperature}`);
    }
  }
  assert.throws(() => argmax(new Float32Array([NaN, NaN])), (e: WebVLMError) => e.code === 'NumericalError');
});
