import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Sha256, sha256Hex } from '../../src/engine/sha256.ts';
import { rng, seededBytes } from '../helpers/safetensors-file.ts';

test('sha256: known vectors', () => {
  assert.equal(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex(new TextEncoder().encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    sha256Hex(new TextEncoder().encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
});

test('sha256: incremental over random splits equals node:crypto, for every length around the block edges', () => {
  const r = rng(5);
  for (const n of [...Array(200).keys(), 1000, 4095, 4096, 65_537, 300_001]) {
    const data = seededBytes(n, n + 1);
    const h = new Sha256();
    for (let at = 0; at < n; ) {
      const k = Math.min(n - at, Math.floor(r() * 150));
      h.update(data.subarray(at, at + k));
      at += k;
    }
    assert.equal(h.length, n);
    assert.equal(h.hex(), createHash('sha256').update(data).digest('hex'), `length ${n}`);
  }
});

test('sha256: chunks in fresh buffers at an odd offset (what fetch hands out)', () => {
  const data = seededBytes(1 << 20, 9);
  const h = new Sha256();
  for (let at = 0; at < data.length; at += 65_521) {
    const chunk = new Uint8Array(65_521 + 3).subarray(3);
    const part = data.subarray(at, at + 65_521);
    chunk.set(part);
    h.update(chunk.subarray(0, part.length));
  }
  assert.equal(h.hex(), createHash('sha256').update(data).digest('hex'));
});
