/** Deterministic inputs and tolerance checks for kernel tests (used in browser and Node alike). */

/** Mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [-scale, scale). */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

export interface CloseStats {
  maxAbs: number;
  maxRel: number;
  /** ‖a−e‖₂ / ‖e‖₂ */
  relL2: number;
  worst: number;
}

export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>): CloseStats {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != expected ${expected.length}`);
  let maxAbs = 0, maxRel = 0, worst = -1, num = 0, den = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    const d = Math.abs(a - e);
    if (!(d <= maxAbs) || Number.isNaN(a)) {
      maxAbs = Number.isNaN(a) ? Infinity : d;
      worst = i;
    }
    maxRel = Math.max(maxRel, d / Math.max(Math.abs(e), 1e-6));
    num += d * d;
    den += e * e;
  }
  return { maxAbs, maxRel, relL2: Math.sqrt(num / Math.max(den, 1e-30)), worst };
}

/**
 * Throws unless every element satisfies |a − e| ≤ atol + rtol·|e| (NaN never passes).
 * Returns the stats so the case can log them.
 */
export function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }): CloseStats {
  const s = compare(actual, expected);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (!(Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e))) {
      throw new Error(`${what}: element ${i} is ${a}, expected ${e} (atol ${tol.atol}, rtol ${tol.rtol}); maxAbs ${s.maxAbs.toExponential(2)}, relL2 ${s.relL2.toExponential(2)}`);
    }
  }
  return s;
}

export function fmtStats(s: CloseStats): string {
  return `maxAbs ${s.maxAbs.toExponential(2)} relL2 ${s.relL2.toExponential(2)}`;
}

export async function expectReject(what: string, fn: () => unknown, code: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const c = (e as { code?: string }).code;
    if (c !== code) throw new Error(`${what}: expected error code ${code}, got ${c ?? 'none'}: ${(e as Error).message}`);
    return;
  }
  throw new Error(`${what}: expected a ${code} error, but nothing was thrown`);
}
