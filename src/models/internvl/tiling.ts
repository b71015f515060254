/**
 * InternVL's tile-grid search ("dynamic high resolution"), in each layout's own candidate order — the order matters,
 * because a tie in aspect-ratio distance goes to the *later* candidate when the image is large enough:
 *
 * - original (`dynamic_preprocess` / `find_closest_aspect_ratio`, InternVL `internvl_chat` and the model cards):
 *   the candidates are `set((i, j) for n in range(min, max + 1) for i in 1..n for j in 1..n if min <= i·j <= max)`
 *   sorted by i·j. Within one product, the order is the CPython set's iteration order, which is deterministic (the
 *   hash of a tuple of small ints does not depend on PYTHONHASHSEED) and is reproduced here: the tuple hash (xxHash
 *   lanes, CPython ≥ 3.8) and the set table (8 slots, 9 linear probes then perturbation, growth to 4 × used when 3/5
 *   full) of `Objects/setobject.c`. `tests/models/internvl-tiling.test.ts` holds orders printed by CPython 3.11.
 * - native (transformers `GotOcr2ImageProcessor` `get_all_supported_aspect_ratios` / `get_optimal_tiled_canvas`):
 *   a list built width-major (for w in 1..max, for h in 1..max) and sorted by w·h — a different order within one
 *   product, so the two layouts can pick different grids on an exact tie (e.g. a 5:4 image with max 2 tiles... and
 *   any image whose aspect ratio is exactly halfway between two same-count grids).
 * Then: best = the smallest |aspect − w/h|; on an exact tie, the candidate replaces the best if
 * area > 0.5 · tile² · w · h. A grid is (cols, rows).
 */
export type Grid = readonly [cols: number, rows: number];

const M64 = (1n << 64n) - 1n;
const P1 = 11400714785074694791n, P2 = 14029467366897019727n, P5 = 2870177450012600261n;

/** CPython's hash of a tuple of two non-negative small ints (64-bit build), as an unsigned 64-bit value. */
function tupleHash(a: number, b: number): bigint {
  let acc = P5;
  for (const lane of [BigInt(a), BigInt(b)]) {
    acc = (acc + lane * P2) & M64;
    acc = ((acc << 31n) | (acc >> 33n)) & M64;
    acc = (acc * P1) & M64;
  }
  acc = (acc + (2n ^ (P5 ^ 3527539n))) & M64;
  return acc === M64 ? 1546275796n : acc;
}

const LINEAR_PROBES = 9;

/** The iteration order of a CPython set built by adding `items` in order (no deletions). */
export function cpythonSetOrder(items: ReadonlyArray<Grid>): Grid[] {
  type Slot = { key: Grid; hash: bigint } | null;
  let table: Slot[] = new Array(8).fill(null);
  let used = 0;
  const same = (x: Grid, y: Grid) => x[0] === y[0] && x[1] === y[1];
  const insertClean = (t: Slot[], key: Grid, hash: bigint) => {
    const mask = BigInt(t.length - 1);
    let perturb = hash, i = hash & mask;
    for (;;) {
      if (t[Number(i)] === null) return void (t[Number(i)] = { key, hash });
      if (i + BigInt(LINEAR_PROBES) <= mask) {
        for (let j = 1n; j <= BigInt(LINEAR_PROBES); j++) if (t[Number(i + j)] === null) return void (t[Number(i + j)] = { key, hash });
      }
      perturb >>= 5n;
      i = (i * 5n + 1n + perturb) & mask;
    }
  };
  for (const key of items) {
    const hash = tupleHash(key[0], key[1]);
    const mask = BigInt(table.length - 1);
    let perturb = hash, i = hash & mask, placed = false, present = false;
    while (!placed && !present) {
      const probes = i + BigInt(LINEAR_PROBES) <= mask ? LINEAR_PROBES : 0;
      for (let k = 0; k <= probes; k++) {
        const e = table[Number(i) + k];
        if (e === null) {
          table[Number(i) + k] = { key, hash };
          placed = true;
          break;
        }
        if (e.hash === hash && same(e.key, key)) {
          present = true;
          break;
        }
      }
      if (placed || present) break;
      perturb >>= 5n;
      i = (i * 5n + 1n + perturb) & mask;
    }
    if (!placed) continue;
    used++;
    // fill == used (no deletions): resize when fill·5 ≥ mask·3, to the smallest power of two > 4·used.
    if (used * 5 >= (table.length - 1) * 3) {
      let size = 8;
      while (size <= used * 4) size <<= 1;
      const next: Slot[] = new Array(size).fill(null);
      for (const e of table) if (e) insertClean(next, e.key, e.hash);
      table = next;
    }
  }
  return table.filter((e): e is { key: Grid; hash: bigint } => e !== null).map((e) => e.key);
}

const stableByProduct = (g: Grid[]) => g.map((x, i) => [x, i] as const).sort((a, b) => a[0][0] * a[0][1] - b[0][0] * b[0][1] || a[1] - b[1]).map((x) => x[0]);

/** `dynamic_preprocess`'s `target_ratios` (original layout). */
export function originalCandidates(minTiles: number, maxTiles: number): Grid[] {
  const items: Grid[] = [];
  for (let n = minTiles; n <= maxTiles; n++)
    for (let i = 1; i <= n; i++) for (let j = 1; j <= n; j++) if (i * j <= maxTiles && i * j >= minTiles) items.push([i, j]);
  return stableByProduct(cpythonSetOrder(items));
}

/** `get_all_supported_aspect_ratios(min, max)` (native layout). */
export function nativeCandidates(minTiles: number, maxTiles: number): Grid[] {
  const items: Grid[] = [];
  for (let w = 1; w <= maxTiles; w++) for (let h = 1; h <= maxTiles; h++) if (w * h <= maxTiles && w * h >= minTiles) items.push([w, h]);
  return stableByProduct(items);
}

/** `find_closest_aspect_ratio` / `get_optimal_tiled_canvas` (the same rule; float64 as in Python). */
export function closestGrid(candidates: ReadonlyArray<Grid>, width: number, height: number, tile: number): Grid {
  const aspect = width / height, area = width * height;
  let bestDiff = Infinity;
  let best: Grid = [1, 1];
  for (const g of candidates) {
    const diff = Math.abs(aspect - g[0] / g[1]);
    if (diff < bestDiff) {
      bestDiff = diff;
      best = g;
    } else if (diff === bestDiff && area > 0.5 * tile * tile * g[0] * g[1]) {
      best = g;
    }
  }
  return best;
}
