import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { readHeaderByRange, readSafetensors, requireFinite, tensorToF32, type SafetensorsTensor } from '../../src/engine/safetensors.ts';
import { f32ToF16 } from '../../src/kernels/dtype.ts';
import { assemble, chunkedStream, encodeSafetensors, rng, seededBytes, type RawTensor } from '../helpers/safetensors-file.ts';
import { expectCode } from '../helpers/expect-code.ts';

const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function sample(): RawTensor[] {
  const f32 = new Float32Array([1.5, -2, 0.25, 3e-3, 7, -0]);
  const bf16 = new Uint16Array([0x3f80, 0xc000, 0x3e80, 0x7f80]); // 1, -2, 0.25, +Inf
  return [
    { name: 'b.weight', dtype: 'F32', shape: [2, 3], data: u8(f32) },
    { name: 'a.bias', dtype: 'BF16', shape: [4], data: u8(bf16) },
    { name: 'empty', dtype: 'F16', shape: [0, 5], data: new Uint8Array(0) },
    { name: 'c.half', dtype: 'F16', shape: [3], data: u8(f32ToF16([0.5, -65504, 1e-7])) },
    { name: 'scalar', dtype: 'F32', shape: [], data: u8(new Float32Array([42])) },
    { name: 'big', dtype: 'BF16', shape: [100, 37], data: seededBytes(7400, 3) },
  ];
}

async function collect(bytes: Uint8Array, opts: Parameters<typeof readSafetensors>[1] = {}, chunking: { seed: number; maxChunk: number } | number[] = { seed: 1, maxChunk: 4096 }) {
  const out: SafetensorsTensor[] = [];
  for await (const t of readSafetensors(chunkedStream(bytes, chunking), opts)) out.push(t);
  return out;
}


test('round trip: every tensor in file order, bytes exact, over odd chunk sizes', async () => {
  const tensors = sample();
  const file = encodeSafetensors(tensors);
  for (const chunking of [{ seed: 7, maxChunk: 13 }, { seed: 8, maxChunk: 100_000 }, [1], [8, 3]]) {
    for (const fileSize of [file.length, undefined]) {
      let header;
      const got = await collect(file, { fileSize, onHeader: (h) => (header = h) }, chunking);
      assert.deepEqual(got.map((t) => t.name), tensors.map((t) => t.name));
      for (let i = 0; i < got.length; i++) {
        assert.deepEqual(got[i].shape, tensors[i].shape);
        assert.equal(got[i].dtype, tensors[i].dtype);
        assert.deepEqual(got[i].bytes, tensors[i].data);
        assert.equal(got[i].bytes.byteOffset, 0, 'own, aligned buffer');
      }
      assert.equal(header!.fileSize, file.length);
      assert.deepEqual(header!.metadata, { format: 'pt' });
    }
  }
});

test('tensorToF32 widens F32/F16/BF16 exactly; other dtypes are refused', async () => {
  const got = await collect(encodeSafetensors(sample()));
  const byName = Object.fromEntries(got.map((t) => [t.name, t]));
  assert.deepEqual([...tensorToF32(byName['b.weight'])], [...new Float32Array([1.5, -2, 0.25, 3e-3, 7, -0])]);
  assert.deepEqual([...tensorToF32(byName['a.bias'])], [1, -2, 0.25, Infinity]);
  assert.deepEqual([...tensorToF32(byName['c.half'])], [0.5, -65504, 1.1920928955078125e-7]);
  assert.equal(tensorToF32(byName.empty).length, 0);
  assert.throws(() => tensorToF32({ dtype: 'I64', bytes: new Uint8Array(8) }), (e) => isWebVLMError(e, 'UnsupportedModel'));
});

test('progress: parse events climb to the file size', async () => {
  const file = encodeSafetensors(sample());
  const events: number[] = [];
  await collect(file, { file: 'x.safetensors', fileSize: file.length, onProgress: (e) => { assert.equal(e.phase, 'parse'); assert.equal(e.total, file.length); events.push(e.loaded); } });
  assert.deepEqual(events, [...events].sort((a, b) => a - b));
  assert.equal(events.at(-1), file.length);
});

test('dtypes: I64/I32/U8/BOOL are recognised but refused as weights unless allowed; unknown dtypes are corrupt', async () => {
  for (const dtype of ['I64', 'I32', 'U8', 'BOOL']) {
    const size = { I64: 8, I32: 4, U8: 1, BOOL: 1 }[dtype]!;
    const file = encodeSafetensors([{ name: 'ids', dtype, shape: [3], data: new Uint8Array(3 * size) }]);
    await expectCode(collect(file), 'UnsupportedModel', new RegExp(`ids is ${dtype}`));
    assert.equal((await collect(file, { weightDtypes: null })).length, 1);
  }
  const bad = assemble(JSON.stringify({ w: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } }), new Uint8Array(1));
  await expectCode(collect(bad, { weightDtypes: null }), 'CorruptCheckpoint', /w: unknown dtype "F7"/);
});

/** A file with one hand-written header entry set, for the malformed cases. */
function withHeader(header: unknown, dataLength: number, opts?: { lengthOverride?: bigint }) {
  return assemble(typeof header === 'string' ? header : JSON.stringify(header), new Uint8Array(dataLength), opts);
}

const F32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

test('malformed headers are CorruptCheckpoint with a precise message', async () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['overlap', withHeader({ a: F32([2], 0, 8), b: F32([2], 4, 12) }, 12), /b: data_offsets \[4, 12\] overlap the previous tensor, which ends at 8/],
    ['gap', withHeader({ a: F32([2], 0, 8), b: F32([1], 12, 16) }, 16), /b: .*leave a gap of 4 bytes after offset 8/],
    ['not from 0', withHeader({ a: F32([1], 4, 8) }, 8), /gap of 4 bytes after offset 0/],
    ['shape mismatch', withHeader({ a: F32([3], 0, 8) }, 8), /a: shape \[3\] × F32 is 12 bytes but data_offsets \[0, 8\] span 8/],
    ['end before begin', withHeader({ a: F32([0], 8, 0) }, 8), /end before they begin/],
    ['negative offset', withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 4), /not a pair of non-negative integers/],
    ['fractional shape', withHeader({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } }, 6), /shape \[1.5\] is not a list/],
    ['missing offsets', withHeader({ a: { dtype: 'F32', shape: [1] } }, 4), /data_offsets undefined/],
    ['extra key', withHeader({ a: { ...F32([1], 0, 4), extra: 1 } }, 4), /unexpected key "extra"/],
    ['entry not object', withHeader({ a: [1, 2] }, 0), /a: entry is not an object/],
    ['metadata not strings', withHeader({ __metadata__: { n: 1 }, a: F32([1], 0, 4) }, 4), /__metadata__.n is not a string/],
    ['not JSON', withHeader('{"a": {"dtype": "F32",', 4), /not valid JSON/],
    ['JSON array', withHeader('[1,2,3]', 0), /does not start with '\{'/],
    ['not starting with {', withHeader(' {}', 0), /does not start with '\{'/],
    ['invalid UTF-8', (() => { const f = assemble('{"a\u00e9": 1}', new Uint8Array(0)); f[11] = 0xff; return f; })(), /header is not valid UTF-8/],
    ['offsets past the file', withHeader({ a: F32([4], 0, 16) }, 8), /tensors run 8 bytes past the end/],
    ['trailing bytes', withHeader({ a: F32([1], 0, 4) }, 12), /8 bytes after the last tensor/],
    ['length 0', withHeader('{}', 0, { lengthOverride: 0n }), /header length 0 is too small/],
    ['length past file', withHeader('{}', 0, { lengthOverride: 1000n }), /header length 1000 runs past the end/],
    ['length absurd', withHeader('{}', 0, { lengthOverride: 1n << 60n }), /not a sane number/],
    ['length above limit', withHeader('{}', 0, { lengthOverride: 200_000_000n }), /exceeds the 100000000-byte limit/],
    ['shorter than 8 bytes', new Uint8Array([1, 0, 0]), /truncated: the header length needs 8 bytes/],
  ];
  for (const [what, file, msg] of cases) {
    const e = await expectCode(collect(file, { file: 'm.safetensors', fileSize: file.length }), 'CorruptCheckpoint', msg);
    assert.match(e.message, /^m\.safetensors: /, what);
  }
});

test('without a known size: lying lengths and offsets show up as truncation or extra data', async () => {
  // Header length beyond the stream: truncated while reading the header.
  await expectCode(collect(withHeader('{}', 0, { lengthOverride: 1000n })), 'CorruptCheckpoint', /truncated: the header needs 1000 bytes/);
  // Offsets beyond the stream: truncated in the tensor, named.
  await expectCode(collect(withHeader({ a: F32([1], 0, 4), b: F32([4], 4, 20) }, 8)), 'CorruptCheckpoint', /truncated: tensor b needs 16 bytes/);
  // Data beyond the last tensor.
  await expectCode(collect(withHeader({ a: F32([1], 0, 4) }, 12)), 'CorruptCheckpoint', /data continues past the/);
});

test('a truncated real file names the tensor where it ends', async () => {
  const file = encodeSafetensors(sample());
  for (const cut of [5, 40, file.length - 7400 - 3, file.length - 1]) {
    const part = file.subarray(0, cut);
    await expectCode(collect(part, { file: 't.safetensors' }), 'CorruptCheckpoint', /t\.safetensors: file truncated/);
    // With the true size declared, the header check fails first or the stream ends short: still corrupt.
    await expectCode(collect(part, { fileSize: file.length }), 'CorruptCheckpoint');
  }
});

test('stream failures keep their type; stopping early cancels the stream', async () => {
  const failing = (err: unknown) => new ReadableStream<Uint8Array>({ pull: (c) => c.error(err) });
  const read = async (s: ReadableStream<Uint8Array>) => { for await (const _ of readSafetensors(s)) void _; };
  await expectCode(read(failing(new WebVLMError('DownloadFailed', 'net down'))), 'DownloadFailed', /net down/);
  await expectCode(read(failing(new TypeError('terminated'))), 'DownloadFailed', /terminated/);
  await expectCode(read(failing(new DOMException('stop', 'AbortError'))), 'Aborted');

  let cancelled = false;
  const file = encodeSafetensors(sample());
  for await (const t of readSafetensors(chunkedStream(file, [64], () => (cancelled = true)))) {
    assert.equal(t.name, 'b.weight');
    break;
  }
  assert.ok(cancelled, 'breaking out of the loop cancels the source');

  const ac = new AbortController();
  ac.abort();
  await expectCode(collect(file, { signal: ac.signal }), 'Aborted');
});

test('fuzz: 300 random header mutations only ever throw CorruptCheckpoint, and never hang', async () => {
  const base = encodeSafetensors(sample());
  const headerLen = Number(new DataView(base.buffer).getBigUint64(0, true));
  const r = rng(20240601);
  const pick = (n: number) => Math.floor(r() * n);
  const started = performance.now();
  let ok = 0;
  let corrupt = 0;
  for (let it = 0; it < 300; it++) {
    let f: Uint8Array = base.slice();
    const kind = it % 6;
    if (kind === 0) {
      for (let k = 0, n = 1 + pick(4); k < n; k++) f[8 + pick(headerLen)] = pick(256); // random bytes in the JSON
    } else if (kind === 1) {
      // Digits in the JSON changed: shapes and offsets lie.
      const digits = [...f.subarray(8, 8 + headerLen).keys()].filter((i) => f[8 + i] >= 0x30 && f[8 + i] <= 0x39);
      for (let k = 0, n = 1 + pick(3); k < n; k++) f[8 + digits[pick(digits.length)]] = 0x30 + pick(10);
    } else if (kind === 2) {
      f = f.subarray(0, pick(f.length)); // truncated anywhere
    } else if (kind === 3) {
      new DataView(f.buffer).setUint32(pick(2) * 4, r() < 0.5 ? pick(2 * headerLen) : Math.floor(r() * 2 ** 32), true); // length field
    } else if (kind === 4) {
      const at = 8 + pick(headerLen); // a byte deleted or inserted in the header
      f = r() < 0.5 ? new Uint8Array([...f.subarray(0, at), ...f.subarray(at + 1)]) : new Uint8Array([...f.subarray(0, at), pick(256), ...f.subarray(at)]);
    } else {
      const s = new TextDecoder().decode(f.subarray(8, 8 + headerLen)); // a structural token swapped
      const tokens = ['"F32"', '"BF16"', '"I64"', '"XX"', '[]', '{}', 'null', '-1', '1e400', '"shape"', '"data_offsets"', '9007199254740993'];
      const spots = [...s.matchAll(/"[A-Z0-9]+"|\[\d+(,\d+)*\]|\d+/g)];
      const m = spots[pick(spots.length)];
      const t = tokens[pick(tokens.length)];
      const text = s.slice(0, m.index) + t + s.slice(m.index! + m[0].length);
      f = assemble(text.trimEnd(), f.subarray(8 + headerLen));
    }
    const t0 = performance.now();
    try {
      await collect(f, { weightDtypes: null, fileSize: it % 2 ? f.length : undefined }, { seed: it, maxChunk: 3000 });
      ok++;
    } catch (e) {
      assert.ok(isWebVLMError(e, 'CorruptCheckpoint'), `iteration ${it} (kind ${kind}) threw ${e instanceof WebVLMError ? e.code : ''} ${String(e)}`);
      corrupt++;
    }
    assert.ok(performance.now() - t0 < 1000, `iteration ${it} took too long`);
  }
  const ms = performance.now() - started;
  console.log(`fuzz: 300 mutations, ${corrupt} CorruptCheckpoint, ${ok} still valid, ${ms.toFixed(0)} ms`);
  assert.ok(corrupt > 200);
  assert.ok(ms < 5000, `fuzz took ${ms} ms`);
});

test('requireFinite: NaN and ±Infinity are CorruptCheckpoint naming tensor, file and element; finite values pass', () => {
  requireFinite(new Float32Array([0, -0, 1e-45, -3.4e38, 3.4028234663852886e38]), { name: 'ok', file: 'f.safetensors' });
  requireFinite(new Float32Array(0), { name: 'empty' });
  for (const [bad, text] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
    assert.throws(() => requireFinite(new Float32Array([1, 2, bad, 4]), { name: 'w.weight', file: 'model-00002-of-00003.safetensors' }), (e: unknown) => {
      assert.ok(isWebVLMError(e, 'CorruptCheckpoint'));
      assert.equal(e.message, `model-00002-of-00003.safetensors: tensor w.weight holds ${text} at element 2 of 4; weights must be finite numbers.`);
      assert.deepEqual([e.details?.file, e.details?.tensor, e.details?.index], ['model-00002-of-00003.safetensors', 'w.weight', 2]);
      return true;
    });
  }
});

test('readHeaderByRange: the header from two range reads; a file under 8 bytes is CorruptCheckpoint without a read', async () => {
  const file = encodeSafetensors(sample());
  const reads: Array<[number, number]> = [];
  const handle = (bytes: Uint8Array, size: number | null = bytes.length) => ({
    name: 'model.safetensors', size,
    range: async (a: number, b: number) => {
      reads.push([a, b]);
      return bytes.slice(a, b);
    },
  });
  const h = await readHeaderByRange(handle(file), { weightDtypes: null });
  assert.equal(h.fileSize, file.length);
  assert.equal(h.tensors.length, sample().length);
  assert.deepEqual(reads, [[0, 8], [8, h.dataOffset]]);
  for (const n of [0, 1, 7]) {
    reads.length = 0;
    await expectCode(readHeaderByRange(handle(file.slice(0, n))), 'CorruptCheckpoint', new RegExp(`^model\\.safetensors: file is ${n} bytes, shorter than the 8-byte header length`));
    assert.deepEqual(reads, [], 'no range past the end of the file is asked for');
  }
});
