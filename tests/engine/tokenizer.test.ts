/**
 * The tokenizer + chat template on the real SmolVLM-256M-Instruct files, against Transformers.js
 * (`@huggingface/transformers`, devDependency) as the independent implementation of HF's tokenizer and
 * template; plus the streaming detokenizer fed text split at every UTF-8 byte boundary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer, toTemplateMessages, type ChatMessage } from '../../src/input/tokenizer.ts';
import { isWebVLMError } from '../../src/errors.ts';

const MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
const DIR = `${MODELS}SmolVLM-256M-Instruct/`;
const HAVE = existsSync(`${DIR}tokenizer.json`);
const SKIP = HAVE ? false : `no ${DIR} in this checkout`;
const read = (f: string) => readFileSync(DIR + f, 'utf8');

function load(): Tokenizer {
  return Tokenizer.fromFiles({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json'), chatTemplate: read('chat_template.json') });
}

async function loadTransformersJs() {
  const { env, AutoTokenizer } = await import('@huggingface/transformers');
  env.localModelPath = MODELS;
  env.allowRemoteModels = false;
  return AutoTokenizer.from_pretrained('SmolVLM-256M-Instruct');
}

const img = { type: 'image' as const };
const text = (t: string) => ({ type: 'text' as const, text: t });
const CONVERSATIONS: Array<[string, ChatMessage[]]> = [
  ['text only', [{ role: 'user', content: [text('What is the capital of France?')] }]],
  ['one image', [{ role: 'user', content: [img, text('Can you describe this image?')] }]],
  ['two images', [{ role: 'user', content: [img, img, text('What differs between these two images?')] }]],
  ['image after text', [{ role: 'user', content: [text('Compare '), img, text(' with '), img] }]],
  [
    'multi-turn',
    [
      { role: 'system', content: [text('You are a helpful assistant.')] },
      { role: 'user', content: [img, text('What is in the picture?')] },
      { role: 'assistant', content: [text('A cat sitting on a windowsill.')] },
      { role: 'user', content: [text('What colour is it?\nAnswer briefly.')] },
    ],
  ],
  ['unicode / emoji', [{ role: 'user', content: [text('Résumé: naïve café — 日本語のテキスト 🤖👩‍👩‍👧 ∑x² ≤ 10\t  spaced   out 12345')] }]],
];

test('chat template and token ids equal Transformers.js on the real SmolVLM files', { skip: SKIP }, async () => {
  const ours = load();
  const theirs = await loadTransformersJs();
  for (const [name, messages] of CONVERSATIONS) {
    for (const addGenerationPrompt of [true, false]) {
      const a = ours.applyChatTemplate(messages, { addGenerationPrompt });
      const b = theirs.apply_chat_template(messages as never, { tokenize: false, add_generation_prompt: addGenerationPrompt }) as string;
      assert.equal(a, b, `${name}: rendered prompt`);
      const ids = ours.encode(a);
      assert.deepEqual(ids, theirs.encode(b), `${name}: ids`);
      assert.equal(ours.decode(ids), theirs.decode(ids), `${name}: decode`);
      assert.equal(ours.decode(ids, { skipSpecialTokens: true }), theirs.decode(ids, { skip_special_tokens: true }), `${name}: decode skipping specials`);
    }
  }
  const one = ours.applyChatTemplate(CONVERSATIONS[1][1], { addGenerationPrompt: true });
  assert.equal(one, '<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:');
});

test('raw text encodes like Transformers.js (digits, whitespace, special-token text, multibyte)', { skip: SKIP }, async () => {
  const ours = load();
  const theirs = await loadTransformersJs();
  const samples = [
    'Hello world', ' leading space', 'trailing space ', '\n\n\nnewlines\r\n', 'tabs\tand  double  spaces',
    '3.14159 and 1,000,000', '<image><image><fake_token_around_image><row_1_col_2><global-img>', 'x<end_of_utterance>y',
    '😀😃😄 👍🏽 🇫🇷', 'Ελληνικά, русский, עברית, العربية, हिन्दी, 中文, 한국어', 'e\u0301 combining, \u200d zwj, \ufeffbom', '',
  ];
  for (const s of samples) {
    const ids = ours.encode(s);
    assert.deepEqual(ids, theirs.encode(s), JSON.stringify(s));
    assert.equal(ours.decode(ids), s, `round trip ${JSON.stringify(s)}`);
  }
});

test('special token ids; no BOS added', { skip: SKIP }, () => {
  const t = load();
  assert.deepEqual(t.specialIds, { image: 49190, fakeTokenAroundImage: 49189, globalImg: 49152, endOfUtterance: 49279, eos: 49279, bos: 1, pad: 2 });
  assert.equal(t.vocabSize, 49280);
  assert.equal(t.tokenToId('<row_1_col_1>') !== undefined, true);
  assert.equal(t.requireId('<image>'), 49190);
  assert.deepEqual(t.encode('Hi'), [26843], 'one token, no BOS in front');
  assert.equal(t.isSpecial(49190), true);
  assert.equal(t.isSpecial(26843), false);
  assert.equal(t.idToToken(49152), '<global-img>');
  assert.throws(() => t.requireId('<no_such_token>'), (e: unknown) => isWebVLMError(e, 'UnsupportedModel'));
});

test('messages: string content, OpenAI image_url parts, errors', { skip: SKIP }, () => {
  const t = load();
  const asString = t.applyChatTemplate([{ role: 'user', content: 'Hello there' }], { addGenerationPrompt: true });
  assert.equal(asString, t.applyChatTemplate([{ role: 'user', content: [text('Hello there')] }], { addGenerationPrompt: true }));
  const openai = t.applyChatTemplate([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,', detail: 'low' } }, text('Hi')] }]);
  assert.equal(openai, '<|im_start|>User:<image>Hi<end_of_utterance>\n');
  assert.deepEqual(toTemplateMessages([{ role: 'user', content: [] }]), [{ role: 'user', content: [{ type: 'text', text: '' }] }]);
  assert.throws(() => t.applyChatTemplate([{ role: 'user', content: [{ type: 'audio' } as never] }]), (e: unknown) => isWebVLMError(e, 'InvalidArgument'));
  assert.throws(() => t.encode(42 as never), (e: unknown) => isWebVLMError(e, 'InvalidArgument'));
  const noTemplate = Tokenizer.fromFiles({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: '{}' });
  assert.throws(() => noTemplate.applyChatTemplate([{ role: 'user', content: 'x' }]), (e: unknown) => isWebVLMError(e, 'UnsupportedModel'));
  assert.throws(() => Tokenizer.fromFiles({ tokenizerJson: '{not json', tokenizerConfig: '{}' }), (e: unknown) => isWebVLMError(e, 'CorruptCheckpoint'));
  // The template can be passed as the Jinja source itself.
  const src = (JSON.parse(read('chat_template.json')) as { chat_template: string }).chat_template;
  const raw = Tokenizer.fromFiles({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: '{}', chatTemplate: `{%- if true -%}{%- endif -%}${src}` });
  assert.equal(raw.applyChatTemplate([{ role: 'user', content: 'x' }]), t.applyChatTemplate([{ role: 'user', content: 'x' }]));
  // The template can come from tokenizer_config alone.
  const fromConfig = Tokenizer.fromFiles({ tokenizerJson: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json') });
  assert.equal(fromConfig.applyChatTemplate([{ role: 'user', content: 'x' }]), t.applyChatTemplate([{ role: 'user', content: 'x' }]));
});

// GPT-2's byte ↔ unicode table, written out independently of src/ for the test.
function byteToChar(): string[] {
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out.push(String.fromCodePoint(keep ? b : 256 + n++));
  }
  return out;
}

const TEXTS = ['héllo wörld', '日本語のテキスト', '🤖 robots 👩‍👩‍👧 family', 'a€b𝄞c', 'Ω≈ç√∫˜µ≤≥÷', 'mixed ascii and 中文 and 😀!'];

test('stream decoder: text split at every UTF-8 byte boundary yields only whole characters', { skip: SKIP }, () => {
  const t = load();
  const b2c = byteToChar();
  const enc = new TextEncoder();
  for (const s of TEXTS) {
    const bytes = enc.encode(s);
    // One single-byte token per byte: every byte boundary is a token boundary.
    const ids = Array.from(bytes, (b) => t.tokenToId(b2c[b]) as number);
    assert.ok(ids.every((id) => id !== undefined), 'every byte has a token');
    const dec = t.createStreamDecoder();
    let acc = '';
    for (let i = 0; i < ids.length; i++) {
      const delta = dec.push(ids[i]);
      assert.ok(!delta.includes('\uFFFD'), `${s}: no replacement char at byte ${i}`);
      assert.ok(!/[\uD800-\uDBFF]$/.test(delta) && !/^[\uDC00-\uDFFF]/.test(delta), `${s}: no split surrogate pair at byte ${i}`);
      acc += delta;
      // Exactly the complete characters of the bytes fed so far.
      const whole = new TextDecoder().decode(bytes.subarray(0, i + 1), { stream: true });
      assert.equal(acc, whole, `${s}: after byte ${i}`);
    }
    acc += dec.flush();
    assert.equal(acc, s);
    // Two-token splits at every byte k: [bytes 0..k) as one run, the rest as another, through real BPE where possible.
    for (let k = 0; k <= bytes.length; k++) {
      const d2 = t.createStreamDecoder();
      let out = '';
      for (const id of ids.slice(0, k)) out += d2.push(id);
      assert.equal(out, new TextDecoder().decode(bytes.subarray(0, k), { stream: true }));
      for (const id of ids.slice(k)) out += d2.push(id);
      assert.equal(out + d2.flush(), s);
    }
  }
});

test('stream decoder on real tokenization equals decode(), specials kept or skipped', { skip: SKIP }, () => {
  const t = load();
  for (const s of [...TEXTS, 'Hi 😀 there<end_of_utterance>\nAssistant: ok', '<|im_start|>User:<image>x<end_of_utterance>']) {
    const ids = t.encode(s);
    for (const skipSpecialTokens of [false, true]) {
      const dec = t.createStreamDecoder({ skipSpecialTokens });
      let acc = '';
      for (const id of ids) {
        const d = dec.push(id);
        assert.ok(!d.includes('\uFFFD'), `${s}: partial character emitted`);
        acc += d;
      }
      acc += dec.flush();
      assert.equal(acc, t.decode(ids, { skipSpecialTokens }), `${s} (skip=${skipSpecialTokens})`);
    }
  }
  // A stream that ends mid-character flushes U+FFFD, like decode().
  const b2c = byteToChar();
  const half = [0xf0, 0x9f].map((b) => t.tokenToId(b2c[b]) as number);
  const dec = t.createStreamDecoder();
  assert.equal(half.map((id) => dec.push(id)).join(''), '');
  assert.equal(dec.flush(), t.decode(half));
  assert.equal(dec.push(t.encode('ok')[0]), 'ok', 'reusable after flush');
});

test('stream decoder for non-byte-level decoders (offset window) equals decode()', { skip: SKIP }, () => {
  // The same vocabulary behind a Sequence decoder takes the generic path (no per-token byte table).
  const json = JSON.parse(read('tokenizer.json'));
  json.decoder = { type: 'Sequence', decoders: [json.decoder] };
  const t = Tokenizer.fromFiles({ tokenizerJson: json, tokenizerConfig: read('tokenizer_config.json') });
  assert.equal(t.byteLevel, false);
  for (const s of [...TEXTS, 'Hi 😀 there<end_of_utterance>\nAssistant: ok']) {
    const ids = t.encode(s);
    for (const skipSpecialTokens of [false, true]) {
      const dec = t.createStreamDecoder({ skipSpecialTokens });
      let acc = '';
      for (const id of ids) {
        const d = dec.push(id);
        assert.ok(!d.includes('\uFFFD'), `${s}: partial character emitted`);
        acc += d;
      }
      assert.equal(acc + dec.flush(), t.decode(ids, { skipSpecialTokens }), s);
    }
  }
});
