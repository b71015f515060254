/**
 * Places in a request queue, taken synchronously in call order: `take()` returns the turn (resolves once every earlier
 * holder called `done`) and `done`. Holders that give up early call `done` at once; later turns still wait for the
 * earlier ones. Used by the engine (worker side) and by the page's API, so both answer in call order.
 */
export class Turns {
  private tail: Promise<void> = Promise.resolve();

  take(): { turn: Promise<void>; done: () => void } {
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const turn = this.tail;
    this.tail = turn.then(() => mine);
    return { turn, done };
  }

  /** Resolves when every place taken so far is done. */
  idle(): Promise<void> {
    return this.tail;
  }
}
