/** Test-side safetensors bytes: well-formed files, and the raw pieces to build malformed ones. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Deterministic bytes (xorshift32). */
export function seededBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Deterministic PRNG in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** 8-byte length + the given header text (padded to 8 with spaces) + data. */
export function assemble(headerJson: string, data: Uint8Array, opts: { pad?: boolean; lengthOverride?: bigint } = {}): Uint8Array {
  let json = headerJson;
  if (opts.pad !== false) json += ' '.repeat((8 - (json.length % 8)) % 8);
  const header = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.lengthOverride ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** A valid safetensors file of these tensors in this order, with optional metadata. */
export function encodeSafetensors(tensors: RawTensor[], metadata: Record<string, string> | null = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.length] };
    at += t.data.length;
  }
  const data = new Uint8Array(at);
  let p = 0;
  for (const t of tensors) {
    data.set(t.data, p);
    p += t.data.length;
  }
  return assemble(JSON.stringify(header), data);
}

/** A stream of `bytes` in chunks of the given sizes (cycled), or random sizes 1..maxChunk from a seed. */
export function chunkedStream(bytes: Uint8Array, chunking: { seed: number; maxChunk: number } | number[], onCancel?: () => void): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  const next = Array.isArray(chunking) ? () => chunking[i++ % chunking.length] : ((r) => () => 1 + Math.floor(r() * chunking.maxChunk))(rng(chunking.seed));
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      const n = Math.max(1, next());
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
    cancel() {
      onCancel?.();
    },
  });
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'webvlm-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
