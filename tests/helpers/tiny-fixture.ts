/** Reading models/tiny/fixture.json (written by models/tiny/make_fixture.py; its FORMAT describes the fields). */

export interface FixtureTensor { shape: number[]; data: Float32Array }

/** `<key>_b64` (base64 of little-endian f32, row-major) with its `<key>_shape`; throws when missing or inconsistent. */
export function fixtureTensor(ex: Record<string, unknown>, key: string): FixtureTensor {
  const b64 = ex[`${key}_b64`], shape = ex[`${key}_shape`];
  if (typeof b64 !== 'string' || !Array.isArray(shape)) throw new Error(`fixture: ${key}_b64 / ${key}_shape missing`);
  const bytes = Buffer.from(b64, 'base64');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Float32Array(bytes.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = dv.getFloat32(4 * i, true);
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`fixture ${key}: shape [${shape}] vs ${data.length} values`);
  return { shape: shape as number[], data };
}
