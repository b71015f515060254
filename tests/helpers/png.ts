/**
 * A small PNG decoder for Node tests and scripts (8-bit gray / gray+alpha / RGB / RGBA / palette, not interlaced):
 * enough for the held-out PNGs Pillow writes. Browsers decode with createImageBitmap; Node has no image decoder and
 * a dependency for 8-bit PNGs is not worth it. Anything else is refused with an Error naming what is unsupported.
 */
import { inflateSync } from 'node:zlib';
import type { PixelImage } from '../../src/input/resample.ts';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes a PNG into RGBA pixels. */
export function decodePng(bytes: Uint8Array): PixelImage & { channels: 4 } {
  if (!SIGNATURE.every((v, i) => bytes[i] === v)) throw new Error('not a PNG file');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, bitDepth = 0, colorType = 0, interlace = 0;
  let palette: Uint8Array | null = null, trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  for (let p = 8; p + 8 <= bytes.length;) {
    const len = dv.getUint32(p);
    const type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    const body = bytes.subarray(p + 8, p + 8 + len);
    if (type === 'IHDR') {
      width = dv.getUint32(p + 8); height = dv.getUint32(p + 12);
      bitDepth = body[8]; colorType = body[9]; interlace = body[12];
    } else if (type === 'PLTE') palette = body;
    else if (type === 'tRNS') trns = body;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    p += 12 + len;
  }
  const ch = CHANNELS[colorType];
  if (bitDepth !== 8 || ch === undefined || interlace !== 0) {
    throw new Error(`unsupported PNG: bit depth ${bitDepth}, color type ${colorType}, interlace ${interlace}`);
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * ch;
  if (raw.length < height * (stride + 1)) throw new Error('truncated PNG data');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= ch ? row[x - ch] : 0, b = up[x], c = x >= ch ? up[x - ch] : 0;
      const pred = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : -1;
      if (pred < 0) throw new Error(`bad PNG filter ${filter} in row ${y}`);
      row[x] = (src[x] + pred) & 255;
    }
  }
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const s = px.subarray(i * ch, i * ch + ch), d = i * 4;
    if (colorType === 3) {
      if (!palette) throw new Error('palette PNG without PLTE');
      data.set(palette.subarray(s[0] * 3, s[0] * 3 + 3), d);
      data[d + 3] = trns && s[0] < trns.length ? trns[s[0]] : 255;
    } else if (ch <= 2) {
      data[d] = data[d + 1] = data[d + 2] = s[0];
      data[d + 3] = ch === 2 ? s[1] : 255;
    } else {
      data[d] = s[0]; data[d + 1] = s[1]; data[d + 2] = s[2];
      data[d + 3] = ch === 4 ? s[3] : 255;
    }
  }
  return { width, height, channels: 4, data };
}
