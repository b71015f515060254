/**
 * A Dawn context for a node:test suite: opened in `before`, destroyed in `after` of the describe block (or file)
 * that calls `useDawnContext()`. Tests read `gpu` (null when Dawn is unavailable) and `why`, for the skip message.
 */
import { after, before } from 'node:test';
import { dawnContext } from './dawn.ts';
import type { GpuContext } from '../../src/gpu/context.ts';

export function useDawnContext(): { gpu: GpuContext | null; why: string } {
  const ctx: { gpu: GpuContext | null; why: string } = { gpu: null, why: '' };
  before(async () => {
    Object.assign(ctx, await dawnContext());
  });
  after(() => ctx.gpu?.destroy());
  return ctx;
}
