/**
 * InternVL's grid search in both layouts' candidate orders (src/models/internvl/tiling.ts). The original layout's
 * orders were printed by CPython 3.11 (`sorted(set(...), key=lambda x: x[0] * x[1])`, dynamic_preprocess's
 * expression); the emulation also matched CPython for every (min, max) with min 1…4, max min…40 (154 sets) when
 * it was written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closestGrid, cpythonSetOrder, nativeCandidates, originalCandidates } from '../../src/models/internvl/tiling.ts';

const PY = {
  '1,12': [[1, 1], [1, 2], [2, 1], [3, 1], [1, 3], [2, 2], [4, 1], [1, 4], [5, 1], [1, 5], [1, 6], [6, 1], [3, 2], [2, 3], [7, 1], [1, 7], [4, 2], [2, 4], [1, 8], [8, 1], [1, 9], [3, 3], [9, 1], [2, 5], [5, 2], [10, 1], [1, 10], [11, 1], [1, 11], [12, 1], [3, 4], [4, 3], [1, 12], [6, 2], [2, 6]],
  '1,6': [[1, 1], [1, 2], [2, 1], [3, 1], [1, 3], [4, 1], [1, 4], [2, 2], [1, 5], [5, 1], [6, 1], [2, 3], [1, 6], [3, 2]],
  '4,4': [[4, 1], [1, 4], [2, 2]],
  '2,8': [[1, 2], [2, 1], [3, 1], [1, 3], [2, 2], [4, 1], [1, 4], [5, 1], [1, 5], [1, 6], [6, 1], [3, 2], [2, 3], [7, 1], [1, 7], [4, 2], [2, 4], [1, 8], [8, 1]],
};

test('original candidates: CPython set iteration order, sorted by tile count', () => {
  for (const [k, want] of Object.entries(PY)) {
    const [mn, mx] = k.split(',').map(Number);
    assert.deepEqual(originalCandidates(mn, mx), want, `min ${mn} max ${mx}`);
  }
  // A set of the same items added twice keeps its first order (duplicates are no-ops).
  assert.deepEqual(cpythonSetOrder([[1, 2], [2, 1], [1, 2]]), cpythonSetOrder([[1, 2], [2, 1]]));
});

test('native candidates: width-major list sorted by tile count (get_all_supported_aspect_ratios docstring)', () => {
  assert.deepEqual(nativeCandidates(1, 4), [[1, 1], [1, 2], [2, 1], [1, 3], [3, 1], [1, 4], [2, 2], [4, 1]]);
});

test('closest grid: exact aspect, ties to the larger grid only for large images', () => {
  const o = originalCandidates(1, 12), n = nativeCandidates(1, 12);
  for (const c of [o, n]) {
    assert.deepEqual(closestGrid(c, 800, 600, 448), [4, 3]);
    assert.deepEqual(closestGrid(c, 448, 448, 448), [1, 1]);
    assert.deepEqual(closestGrid(c, 150, 100, 448), [3, 2]);
    assert.deepEqual(closestGrid(c, 100, 1000, 448), [1, 10]);
  }
  // 2.5 is halfway between 2:1 and 3:1 (max 3): the later (3 tiles) wins only when area > 0.5·448²·3 = 301056.
  const c3 = nativeCandidates(1, 3);
  assert.deepEqual(closestGrid(c3, 1000, 400, 448), [3, 1]);
  assert.deepEqual(closestGrid(c3, 500, 200, 448), [2, 1]);
  assert.deepEqual(closestGrid(originalCandidates(1, 3), 1000, 400, 448), [3, 1]);
});

test('the layouts disagree on a same-count tie (min = max = 4, aspect 2.5: 4×1 vs 2×2 at equal distance)', () => {
  const o = originalCandidates(4, 4), n = nativeCandidates(4, 4);
  // Small image: the first of the tied candidates stays — (4,1) in CPython's set order, (2,2) in transformers' list.
  assert.deepEqual(closestGrid(o, 20, 8, 448), [4, 1]);
  assert.deepEqual(closestGrid(n, 20, 8, 448), [2, 2]);
  // Large image (area > 0.5·448²·4): the later one replaces it.
  assert.deepEqual(closestGrid(o, 2000, 800, 448), [2, 2]);
  assert.deepEqual(closestGrid(n, 2000, 800, 448), [4, 1]);
});
