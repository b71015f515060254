/**
 * Incremental SHA-256 (FIPS 180-4). WebCrypto's `digest` needs the whole input at once, which would mean holding a
 * 500 MB checkpoint in memory; this one hashes chunks as they stream in, so a download is verified on the fly.
 */

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INIT = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

export class Sha256 {
  private readonly h = new Int32Array(INIT);
  private readonly w = new Int32Array(64);
  /** Partial block carried between `update` calls. */
  private readonly block = new Uint8Array(64);
  private blockLen = 0;
  private bytes = 0;
  private finished = false;

  /** Bytes hashed so far. */
  get length(): number {
    return this.bytes;
  }

  update(data: Uint8Array): this {
    if (this.finished) throw new Error('Sha256: update after digest');
    let pos = 0;
    const n = data.length;
    this.bytes += n;
    if (this.blockLen > 0) {
      const take = Math.min(64 - this.blockLen, n);
      this.block.set(data.subarray(0, take), this.blockLen);
      this.blockLen += take;
      pos = take;
      if (this.blockLen < 64) return this;
      this.compress(this.block, 0);
      this.blockLen = 0;
    }
    const blocks = (n - pos) >>> 6;
    if (blocks > 0) {
      this.compress(data, pos, blocks);
      pos += blocks * 64;
    }
    if (pos < n) {
      this.block.set(data.subarray(pos), 0);
      this.blockLen = n - pos;
    }
    return this;
  }

  digest(): Uint8Array {
    if (!this.finished) {
      this.finished = true;
      const b = this.block;
      let len = this.blockLen;
      b[len++] = 0x80;
      if (len > 56) {
        b.fill(0, len);
        this.compress(b, 0);
        len = 0;
      }
      b.fill(0, len, 56);
      // Message length in bits as a 64-bit big-endian integer (exact for inputs < 2^53 bytes).
      const bits = this.bytes * 8;
      const hi = Math.floor(bits / 2 ** 32);
      const lo = bits >>> 0;
      b[56] = hi >>> 24; b[57] = hi >>> 16; b[58] = hi >>> 8; b[59] = hi;
      b[60] = lo >>> 24; b[61] = lo >>> 16; b[62] = lo >>> 8; b[63] = lo;
      this.compress(b, 0);
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      const v = this.h[i];
      out[i * 4] = v >>> 24; out[i * 4 + 1] = v >>> 16; out[i * 4 + 2] = v >>> 8; out[i * 4 + 3] = v;
    }
    return out;
  }

  hex(): string {
    let s = '';
    for (const b of this.digest()) s += b.toString(16).padStart(2, '0');
    return s;
  }

  private compress(d: Uint8Array, p: number, blocks = 1): void {
    compressBlocks(this.h, this.w, new DataView(d.buffer, d.byteOffset + p, blocks * 64), blocks);
  }
}

/**
 * Hashes `blocks` consecutive 64-byte blocks. One call per chunk keeps the state in locals; big-endian words come
 * from `DataView.getInt32` (about 2× faster in V8 than assembling them from bytes).
 */
function compressBlocks(h: Int32Array, w: Int32Array, dv: DataView, blocks: number): void {
  let p = 0;
  let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
  for (let blk = 0; blk < blocks; blk++) {
    for (let i = 0; i < 16; i++, p += 4) w[i] = dv.getInt32(p);
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, dd = h3, e = h4, f = h5, g = h6, hh = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (dd + t1) | 0;
      dd = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + dd) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + hh) | 0;
  }
  h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;
}

export function sha256Hex(data: Uint8Array): string {
  return new Sha256().update(data).hex();
}

/** SHA-256 of `data` as lower-case hex: WebCrypto where there is one (every secure context), else `sha256Hex`. */
export async function digestHex(data: Uint8Array): Promise<string> {
  if (!globalThis.crypto?.subtle) return sha256Hex(data);
  const d = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

// Run every path once at load: otherwise V8 optimises compressBlocks on-stack in the middle of its first (large)
// call, before the code after the loop has type feedback, and then deoptimises on every exit (measured 5× slower).
for (let i = 0; i < 2; i++) compressBlocks(new Int32Array(8), new Int32Array(64), new DataView(new ArrayBuffer(128)), 2);
