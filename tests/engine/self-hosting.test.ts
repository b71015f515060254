/**
 * Self-hosted model files (Node, local server): a dev server whose SPA fallback answers missing files with its
 * index.html (200, text/html) must read as "not there", not as the file; a server that also lies about the content
 * type is caught by the first bytes; and a plain folder (`{folder}/{file}`, no hub layout, no model-info API) loads
 * when the model id is the folder's URL, or with `layout: 'folder'`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebVLMError, isWebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';
import { HubSource, type HubOptions } from '../../src/engine/hub.ts';
import { readAll, readJson } from '../../src/engine/file-source.ts';
import { openCheckpoint, readCheckpointTensors } from '../../src/engine/checkpoint.ts';
import { startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { ensureTestModel, TEST_MODEL_DIR } from '../reliability/helpers.ts';
import { expectCode } from '../helpers/expect-code.ts';

const REPO = 'webvlm-test/random-smolvlm';
const FAST: HubOptions = { retryDelayMs: 5, maxRetryDelayMs: 20, headersTimeoutMs: 5000, stallTimeoutMs: 5000 };
const T = { timeout: 60_000 };
const template = () => JSON.parse(readFileSync(join(TEST_MODEL_DIR, 'chat_template.json'), 'utf8')).chat_template as string;


/** Opens the checkpoint and streams every tensor: the whole load path short of the GPU. */
async function loadAll(src: HubSource) {
  const ckpt = await openCheckpoint(src, { label: src.model });
  let tensors = 0;
  for await (const t of readCheckpointTensors(ckpt)) if (t.name) tensors++;
  return { ckpt, tensors };
}

describe('self-hosting', () => {
  let spa: HubServer;
  let lying: HubServer;
  let plain: HubServer;
  before(async () => {
    await ensureTestModel();
    spa = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, spaFallback: true });
    lying = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, spaFallback: { contentType: 'application/octet-stream' } });
    plain = await startHubServer({ repos: {}, folders: { 'models/tiny': TEST_MODEL_DIR, 'mirror/webvlm-test/random-smolvlm': TEST_MODEL_DIR } });
  });
  after(async () => {
    await Promise.all([spa?.close(), lying?.close(), plain?.close()]);
  });

  test("SPA fallback: a missing optional file (text/html 200) is not there; the load uses chat_template.json", T, async () => {
    const src = new HubSource(REPO, { baseUrl: spa.url, ...FAST });
    assert.equal(await src.open('chat_template.jinja'), null, 'the index page is not chat_template.jinja');
    assert.equal(await src.open('model.safetensors.index.json'), null);
    const { ckpt, tensors } = await loadAll(src);
    assert.equal(ckpt.chatTemplate, template());
    assert.doesNotMatch(ckpt.chatTemplate!, /<html|<!doctype/i);
    assert.ok(tensors > 10, `${tensors} tensors`);
    // The fallback page is what got served (the server really has the trap).
    const jinja = spa.requestsFor(REPO, 'chat_template.jinja');
    assert.ok(jinja.length > 0 && jinja.every((r) => r.status === 200));
  });

  test('a server that also lies about the content type: the first bytes give it away (CorruptCheckpoint, SPA hint)', T, async () => {
    const src = new HubSource(REPO, { baseUrl: lying.url, ...FAST });
    const err = await expectCode(openCheckpoint(src, { label: REPO }), 'CorruptCheckpoint', /chat_template\.jinja: got an HTML page instead of the file/);
    assert.match(err.hint, /SPA|fallback/i);
    assert.equal(err.details?.file, 'chat_template.jinja');
    // Any stream of a file that should not be HTML fails the same way at its first bytes (safetensors too).
    const h = await src.open('model-00001-of-00002.safetensors');
    assert.ok(h, 'the lying server gives a handle');
    await expectCode(readAll(h), 'CorruptCheckpoint', /model-00001-of-00002\.safetensors: got an HTML page/);
    await expectCode(h.range(0, 8), 'CorruptCheckpoint', /got an HTML page/);
    await expectCode(readJson((await src.open('missing.json'))!), 'CorruptCheckpoint', /missing\.json: got an HTML page/);
  });

  test('a plain folder: the model id is the folder URL; files are {folder}{file}; no model-info API', T, async () => {
    const folder = `${plain.url}/models/tiny/`;
    for (const model of [folder, folder.slice(0, -1)]) {
      const src = new HubSource(model, FAST);
      assert.equal(src.layout, 'folder');
      assert.equal(src.baseUrl, folder);
      assert.equal(src.url('config.json'), `${folder}config.json`);
      assert.equal(src.url('sub dir/a+b.json'), `${folder}sub%20dir/a%2Bb.json`);
    }
    const before = plain.requests.length;
    const src = new HubSource(folder, FAST);
    assert.equal(await src.open('chat_template.jinja'), null);
    const { ckpt, tensors } = await loadAll(src);
    assert.equal(ckpt.chatTemplate, template());
    assert.ok(tensors > 10);
    const reqs = plain.requests.slice(before);
    assert.ok(reqs.every((r) => r.repo === 'models/tiny'), JSON.stringify(reqs.filter((r) => r.repo !== 'models/tiny')));
    assert.ok(!reqs.some((r) => r.file === 'api'), 'no API request');
  });

  test("a plain folder of repos: layout: 'folder' reads {baseUrl}/{model}/{file}", T, async () => {
    const src = new HubSource(REPO, { ...FAST, baseUrl: `${plain.url}/mirror/`, layout: 'folder' });
    assert.equal(src.url('config.json'), `${plain.url}/mirror/${REPO}/config.json`);
    const { tensors } = await loadAll(src);
    assert.ok(tensors > 10);
  });

  test('folder ids: relative paths resolve against the page; repo ids stay strict', () => {
    assert.throws(() => new HubSource('/models/tiny/'), (e) => isWebVLMError(e, 'InvalidArgument') && /absolute URL/.test((e as Error).message));
    const g = globalThis as { location?: unknown };
    g.location = new URL('https://app.example.com/demo/index.html');
    try {
      assert.equal(new HubSource('/models/tiny/').baseUrl, 'https://app.example.com/models/tiny/');
      assert.equal(new HubSource('./models/tiny').baseUrl, 'https://app.example.com/demo/models/tiny/');
      assert.equal(new HubSource('../tiny/').url('config.json'), 'https://app.example.com/tiny/config.json');
    } finally {
      delete g.location;
    }
    for (const bad of ['o/m/', 'o//m', 'models/tiny/']) assert.throws(() => new HubSource(bad), (e) => isWebVLMError(e, 'InvalidArgument'), bad);
    assert.throws(() => new HubSource('o/m', { layout: 'folder' }), (e) => isWebVLMError(e, 'InvalidArgument') && /baseUrl/.test((e as Error).message));
  });
});
