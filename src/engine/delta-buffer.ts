/**
 * The deltas of one request, kept until the caller reads them. Requests run eagerly (from the call, not from the first
 * read), so a stream nobody reads still completes and frees the request queue; reading it early or late gives the
 * same deltas. One reader; leaving the loop early (`break`, `return()`) calls `onCancel` (the request is aborted).
 */
import { WebVLMError } from '../errors.ts';
import type { ChatDelta } from '../types.ts';

export class DeltaBuffer implements AsyncIterable<ChatDelta> {
  private readonly items: ChatDelta[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private failure: unknown = null;
  private iterated = false;
  sawDone = false;

  constructor(private readonly onCancel: () => void) {}

  push(d: ChatDelta): void {
    if (this.ended) return;
    if (d.type === 'done') this.sawDone = true;
    this.items.push(d);
    this.notify();
  }

  fail(e: unknown): void {
    if (this.ended) return;
    this.failure = e;
    this.end();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<ChatDelta> {
    if (this.iterated) throw new WebVLMError('InvalidArgument', 'A chat stream can be read once; call chat() again for another answer.');
    this.iterated = true;
    let finished = false;
    return {
      next: async (): Promise<IteratorResult<ChatDelta>> => {
        for (;;) {
          if (finished) return { done: true, value: undefined };
          const d = this.items.shift();
          if (d) {
            if (d.type === 'done') finished = true;
            return { done: false, value: d };
          }
          if (this.failure) {
            finished = true;
            throw this.failure;
          }
          if (this.ended) {
            finished = true;
            return { done: true, value: undefined };
          }
          await new Promise<void>((r) => (this.wake = r));
        }
      },
      return: async (): Promise<IteratorResult<ChatDelta>> => {
        if (!finished) {
          finished = true;
          if (!this.ended) this.onCancel();
        }
        return { done: true, value: undefined };
      },
    };
  }
}
