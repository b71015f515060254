/** Config bounds: hostile sizes are rejected before the loader builds anything from them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseIdefics3Config, MAX_LAYERS } from '../../src/models/idefics3/config.ts';

const real = JSON.parse(readFileSync(new URL('../../../shared/models/SmolVLM-256M-Instruct/config.json', import.meta.url), 'utf8'));

test('the real SmolVLM-256M config parses', () => {
  const c = parseIdefics3Config(real);
  assert.equal(c.text.numHiddenLayers, 30);
  assert.equal(c.vision.numHiddenLayers, 12);
});

for (const [what, mutate] of [
  ['2^31 text layers', (c: any) => (c.text_config.num_hidden_layers = 2 ** 31)],
  [`${MAX_LAYERS + 1} vision layers`, (c: any) => (c.vision_config.num_hidden_layers = MAX_LAYERS + 1)],
  ['a 2^40 vocabulary', (c: any) => (c.text_config.vocab_size = 2 ** 40)],
  ['a hidden size of 2^30', (c: any) => (c.text_config.hidden_size = 2 ** 30)],
] as const) {
  test(`rejects ${what} with UnsupportedModel, at once`, () => {
    const c = structuredClone(real);
    mutate(c);
    const t0 = performance.now();
    assert.throws(() => parseIdefics3Config(c), (e: any) => e.code === 'UnsupportedModel' && /exceeds|at most|from 1 to/.test(e.message));
    assert.ok(performance.now() - t0 < 100);
  });
}
