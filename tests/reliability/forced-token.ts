/**
 * A variant of the random-weight test checkpoint that greedily generates `<image>` as its first answer token (as a
 * random-weight checkpoint once did by chance at its 13th token): the lm_head row of `<image>` becomes 4× the row of
 * the token the original picks first (×4 is exact in bf16), so the `<image>` logit is 4× the winning one (> 0).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { modelVariant } from './helpers.ts';

export const FORCED_PROMPT = [{ role: 'user' as const, content: 'Hello.' }];

/** The greedy first token of `repo` for FORCED_PROMPT, through the engine's own processor and model. */
export async function firstGreedyToken(gpu: GpuContext, baseUrl: string, repo: string): Promise<{ token: number; imageTokenId: number }> {
  const engine = await Engine.create(gpu, repo, { baseUrl, weights: 'f32', contextLength: 64 });
  try {
    const { model, processor, config } = engine.loaded;
    const ids = processor.processChat(FORCED_PROMPT, [], {}).inputIds;
    const cache = model.newCache(64);
    try {
      return { token: await model.forwardArgmax(ids, cache), imageTokenId: config.imageTokenId };
    } finally {
      cache.destroy(gpu);
    }
  } finally {
    await engine.dispose();
  }
}

export interface ForcedVariant {
  repo: string;
  hub: HubServer;
  close(): Promise<void>;
}

/** Writes the variant next to `dir`'s files and serves it; `first` is the original's greedy first token. */
export async function forcedImageVariant(dir: string, first: number, imageTokenId: number): Promise<ForcedVariant> {
  const bytes = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
  const dv = new DataView(bytes.buffer);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header['lm_head.weight'];
  if (t.dtype !== 'BF16') throw new Error(`lm_head.weight is ${t.dtype}; this helper edits BF16`);
  const H = t.shape[1];
  const at = (row: number, i: number) => 8 + n + t.data_offsets[0] + (row * H + i) * 2;
  for (let i = 0; i < H; i++) {
    // bf16 = the top 16 bits of an f32: ×4 adds 2 to the exponent (no rounding; the row has no huge values).
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    u[0] = dv.getUint16(at(first, i), true) << 16;
    f[0] *= 4;
    dv.setUint16(at(imageTokenId, i), u[0] >>> 16, true);
  }
  const variant = modelVariant({ 'model.safetensors': Buffer.from(bytes) });
  const repo = 'webvlm-test/forced-image-token';
  const hub = await startHubServer({ repos: { [repo]: variant.dir } });
  return {
    repo, hub,
    async close() {
      await hub.close();
      variant.remove();
    },
  };
}
