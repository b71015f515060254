/**
 * readAll / readJson / readText: byte caps (checked against the known size before reading, and while streaming,
 * cancelling the stream as soon as the cap is passed) and HTML pages where JSON or text was expected (a dev
 * server's SPA fallback), each a `CorruptCheckpoint` that says what happened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { MAX_JSON_BYTES, MAX_TEXT_BYTES, readAll, readJson, readText, looksLikeHtml, type FileHandle } from '../../src/engine/file-source.ts';
import { expectCode } from '../helpers/expect-code.ts';

const MiB = 1 << 20;

/** A handle over generated chunks; counts what was pulled and whether the stream was cancelled. */
function fakeHandle(name: string, opts: { size: number | null; chunk: () => Uint8Array; chunks: number }) {
  const stats = { streams: 0, pulled: 0, cancelled: false };
  const h: FileHandle = {
    name,
    size: opts.size,
    sha256: null,
    stream: () => {
      stats.streams++;
      let n = 0;
      return new ReadableStream<Uint8Array>({
        pull: (c) => {
          if (n++ >= opts.chunks) return c.close();
          const b = opts.chunk();
          stats.pulled += b.length;
          c.enqueue(b);
        },
        cancel: () => void (stats.cancelled = true),
      }, { highWaterMark: 0 });
    },
    range: async () => new Uint8Array(0),
  };
  return { h, stats };
}

const textHandle = (name: string, text: string, size: number | null = null) => {
  const bytes = new TextEncoder().encode(text);
  return fakeHandle(name, { size, chunks: 1, chunk: () => bytes }).h;
};


test('caps: defaults fit real files (SmolVLM tokenizer.json is 3.5 MB) with room', () => {
  assert.equal(MAX_JSON_BYTES, 64 * MiB);
  assert.equal(MAX_TEXT_BYTES, 16 * MiB);
});

test('a file whose known size exceeds the cap fails before a byte is read, naming file, size and cap', async () => {
  const { h, stats } = fakeHandle('tokenizer.json', { size: 300 * MiB, chunks: 300, chunk: () => new Uint8Array(MiB) });
  const err = await expectCode(readJson(h), 'CorruptCheckpoint', /tokenizer\.json is 314572800 bytes .*more than the 67108864-byte \(64 MiB\) limit for a JSON file/);
  assert.deepEqual(err.details, { file: 'tokenizer.json', size: 300 * MiB, maxBytes: MAX_JSON_BYTES });
  assert.equal(stats.streams, 0, 'nothing was downloaded');
  const t = fakeHandle('chat_template.jinja', { size: 17 * MiB, chunks: 17, chunk: () => new Uint8Array(MiB) });
  await expectCode(readText(t.h), 'CorruptCheckpoint', /chat_template\.jinja is 17825792 bytes/);
  assert.equal(t.stats.streams, 0);
  const a = fakeHandle('x.bin', { size: 3 * MiB, chunks: 3, chunk: () => new Uint8Array(MiB) });
  await expectCode(readAll(a.h, { maxBytes: 2 * MiB }), 'CorruptCheckpoint', /x\.bin is 3145728 bytes/);
});

test('a file of unknown size is cut off as soon as it passes the cap: the stream is cancelled', async () => {
  // 100 MiB of "{" + spaces, 1 MiB at a time, under a 2 MiB cap: at most 3 MiB are pulled.
  let first = true;
  const chunk = () => {
    const b = new Uint8Array(MiB).fill(0x20);
    if (first) b[0] = 0x7b;
    first = false;
    return b;
  };
  const { h, stats } = fakeHandle('config.json', { size: null, chunks: 100, chunk });
  const err = await expectCode(readJson(h, { maxBytes: 2 * MiB }), 'CorruptCheckpoint', /config\.json is more than 2097152 bytes \(the limit for a JSON file\)/);
  assert.equal(err.details?.file, 'config.json');
  assert.equal(err.details?.maxBytes, 2 * MiB);
  assert.ok(stats.pulled <= 3 * MiB, `pulled ${stats.pulled}`);
  assert.ok(stats.cancelled, 'the stream was cancelled');
  // A size that lies low is caught the same way.
  const lying = fakeHandle('config.json', { size: 10, chunks: 100, chunk: () => new Uint8Array(MiB).fill(0x20) });
  await expectCode(readJson(lying.h, { maxBytes: 2 * MiB }), 'CorruptCheckpoint', /more than 2097152 bytes/);
  assert.ok(lying.stats.cancelled);
});

test('within the cap: bytes, JSON and text come through unchanged', async () => {
  assert.deepEqual(await readJson(textHandle('config.json', ' {"a": [1, 2]}')), { a: [1, 2] });
  assert.equal(await readText(textHandle('chat_template.jinja', '{% for m in messages %}<|im_start|>{{ m }}{% endfor %}')), '{% for m in messages %}<|im_start|>{{ m }}{% endfor %}');
  const { h } = fakeHandle('x.bin', { size: 2 * MiB, chunks: 2, chunk: () => new Uint8Array(MiB).fill(7) });
  const all = await readAll(h, { maxBytes: 2 * MiB });
  assert.equal(all.length, 2 * MiB);
  await expectCode(readJson(textHandle('broken.json', '{"a": ')), 'CorruptCheckpoint', /broken\.json is not valid JSON/);
});

test('an HTML page where JSON or a template was expected is CorruptCheckpoint saying so, with an SPA-fallback hint', async () => {
  const page = '\n  <!DOCTYPE html>\n<html><head><title>app</title></head><body></body></html>';
  for (const read of [readJson, readText]) {
    const err = await expectCode(read(textHandle('chat_template.jinja', page)), 'CorruptCheckpoint', /chat_template\.jinja: got an HTML page instead of the file/);
    assert.match(err.hint, /SPA|fallback/i);
    assert.equal(err.details?.file, 'chat_template.jinja');
  }
  await expectCode(readJson(textHandle('config.json', '<html><body>404</body></html>')), 'CorruptCheckpoint', /got an HTML page/);
  // Templates are full of tags; only a document start counts.
  assert.equal(await readText(textHandle('chat_template.jinja', '<|im_start|>{{ x }}<html>')), '<|im_start|>{{ x }}<html>');
  assert.ok(looksLikeHtml(new TextEncoder().encode('\ufeff  <!doctype HTML>')));
  assert.ok(looksLikeHtml(new TextEncoder().encode('<HTML lang="en">')));
  assert.ok(!looksLikeHtml(new TextEncoder().encode('<htmlx')));
  assert.ok(!looksLikeHtml(new TextEncoder().encode('{"<!doctype html>": 1}')));
});
