/**
 * Stop strings over a stream of text deltas. Text that could still turn into a stop string is held
 * back, so the caller never emits the beginning of a stop string and then has to take it back.
 */
export class StopMatcher {
  private pending = '';
  constructor(private readonly stops: string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Feeds a delta; returns the text safe to emit, and whether a stop string was hit. */
  push(delta: string): { emit: string; stopped: boolean } {
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const emit = this.pending.slice(0, cut);
      this.pending = '';
      return { emit, stopped: true };
    }
    // Hold back the longest suffix that is a prefix of some stop string.
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit, stopped: false };
  }

  /** End of generation: whatever was held back is real text. */
  flush(): string {
    const p = this.pending;
    this.pending = '';
    return p;
  }
}
