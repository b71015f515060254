/** Seeded PRNG (mulberry32) for reproducible sampling: the same seed gives the same tokens. */
export class Rng {
  private state: number;
  constructor(seed: number = (Math.random() * 2 ** 32) >>> 0) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
