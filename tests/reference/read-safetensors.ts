/**
 * Minimal synchronous safetensors reader for tests (Node): whole file in memory, F32/BF16/F16 → Float32Array.
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...,
 * "__metadata__"?: {...}}, then the data region; offsets are relative to its start. Not the production loader
 * (that is `src/engine/safetensors.ts`); this one only has to be obviously right.
 */
import { readFileSync } from 'node:fs';
import { WebVLMError } from '../../src/errors.ts';
import type { WeightMap } from './idefics3-ref.ts';

const BYTES: Record<string, number> = { F32: 4, BF16: 2, F16: 2 };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE half → number (exact). */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function bad(msg: string): never {
  throw new WebVLMError('CorruptCheckpoint', `safetensors: ${msg}`);
}

export function parseSafetensors(bytes: Uint8Array): WeightMap {
  if (bytes.length < 8) bad('file shorter than its 8-byte header length');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > bytes.length - 8) bad(`header length ${n} exceeds the file`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const base = 8 + n;
  const out: WeightMap = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: off } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const size = BYTES[dtype];
    if (!size) bad(`${name}: dtype ${dtype} not supported here (F32, BF16, F16)`);
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = off;
    if (!(begin >= 0 && end - begin === count * size && base + end <= bytes.length)) bad(`${name}: data_offsets [${off}] do not fit shape [${shape}] ${dtype}`);
    const data = new Float32Array(count);
    const at = bytes.byteOffset + base + begin;
    // Typed-array views when aligned on a little-endian host (fast); DataView reads otherwise.
    const fast = LITTLE_ENDIAN && at % size === 0;
    if (dtype === 'F32') {
      if (fast) data.set(new Float32Array(bytes.buffer, at, count));
      else for (let i = 0; i < count; i++) data[i] = dv.getFloat32(base + begin + 4 * i, true);
    } else {
      const h = fast ? new Uint16Array(bytes.buffer, at, count) : Uint16Array.from({ length: count }, (_, i) => dv.getUint16(base + begin + 2 * i, true));
      if (dtype === 'BF16') {
        // bf16 is the top half of an f32: widen by shifting into the high 16 bits (exact).
        const u = new Uint32Array(data.buffer);
        for (let i = 0; i < count; i++) u[i] = h[i] << 16;
      } else for (let i = 0; i < count; i++) data[i] = f16ToNumber(h[i]);
    }
    out.set(name, { shape: [...shape], data });
  }
  return out;
}

export function readSafetensors(path: string): WeightMap {
  return parseSafetensors(readFileSync(path));
}
