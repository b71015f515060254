/**
 * The browser cache and a dev server's SPA fallback (Chromium, createEngine → worker → cache → hub): a missing
 * optional file that comes back as the app's index.html (200) is neither used nor cached as the file — it is
 * remembered as absent, like a 404; such a page already in the cache (stored by an older version) is evicted; and
 * a server that lies about the content type fails the load with `CorruptCheckpoint` and leaves no cached copy of it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SPA_INDEX, startHubServer, type HubServer } from '../helpers/hub-server.ts';
import { openRel, TEST_MODEL_DIR, type Rel } from './helpers.ts';

const REPO = 'webvlm-test/random-smolvlm';
const T = { timeout: 180_000 };

type Listing = Array<{ model: string; baseUrl: string; files: Array<{ file: string; size: number }> }>;

describe('the browser cache does not store an SPA fallback page as a model file', () => {
  let rel: Rel;
  let spa: HubServer;
  let lying: HubServer;
  before(async () => {
    rel = await openRel();
    await rel.eval('cache.clear');
    spa = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, cors: true, spaFallback: true });
    lying = await startHubServer({ repos: { [REPO]: TEST_MODEL_DIR }, cors: true, spaFallback: { contentType: 'application/octet-stream' } });
  });
  after(async () => {
    await rel?.eval('cache.clear').catch(() => {});
    await rel?.close();
    await spa?.close();
    await lying?.close();
  });

  const files = async (baseUrl: string) => {
    const list = await rel.eval<Listing>('cache.list');
    return list.find((e) => e.model === REPO && e.baseUrl === baseUrl)?.files.map((f) => f.file) ?? [];
  };

  test('text/html for a missing file: the load works, the page is not cached, a second load does not ask again', T, async () => {
    const r = await rel.load('x', REPO, { baseUrl: spa.url, contextLength: 256 });
    assert.ok(r.ok, JSON.stringify(r.error));
    await rel.dispose('x');
    const cached = await files(spa.url);
    assert.ok(cached.includes('config.json') && cached.includes('chat_template.json'), JSON.stringify(cached));
    assert.ok(!cached.includes('chat_template.jinja'), `the index page was cached as chat_template.jinja: ${JSON.stringify(cached)}`);
    const asked = spa.requestsFor(REPO, 'chat_template.jinja').length;
    assert.ok(asked > 0);
    const r2 = await rel.load('x', REPO, { baseUrl: spa.url, contextLength: 256 });
    assert.ok(r2.ok, JSON.stringify(r2.error));
    await rel.dispose('x');
    assert.equal(spa.requestsFor(REPO, 'chat_template.jinja').length, asked, 'remembered as absent, like a 404');
  });

  test('a web page cached as the file (by a version without the check) is evicted; the load works from chat_template.json', T, async () => {
    // What an older webvlm stored: the index page as chat_template.jinja, with a valid index entry.
    const stored = await rel.page.evaluate(async ([model, baseUrl, page]) => {
      const cs = await import(/* @vite-ignore */ '/src/engine/cache-store.ts' as string) as typeof import('../../src/engine/cache-store.ts');
      const sha = await import(/* @vite-ignore */ '/src/engine/sha256.ts' as string) as typeof import('../../src/engine/sha256.ts');
      const bytes = new TextEncoder().encode(page);
      const dataId = cs.newDataId('chat_template.jinja');
      const w = await cs.openWriter('cache', dataId);
      await w.write(bytes);
      await w.close();
      await cs.writeMeta({ model, revision: 'main', baseUrl, v: 1, file: 'chat_template.jinja', size: bytes.length, sha256: null, blockSize: cs.BLOCK_BYTES, blocks: [await sha.digestHex(bytes)], backend: 'cache', dataId, storedAt: Date.now() });
      return bytes.length;
    }, [REPO, spa.url, SPA_INDEX] as const);
    assert.ok((await files(spa.url)).includes('chat_template.jinja'), 'the stale page is in the cache');
    assert.equal(stored, Buffer.byteLength(SPA_INDEX));
    const r = await rel.load('x', REPO, { baseUrl: spa.url, contextLength: 256 });
    assert.ok(r.ok, JSON.stringify(r.error));
    await rel.dispose('x');
    assert.ok(!(await files(spa.url)).includes('chat_template.jinja'), 'evicted');
  });

  test('a lying content type: CorruptCheckpoint naming the file and the HTML page; nothing of it cached', T, async () => {
    const r = await rel.load('x', REPO, { baseUrl: lying.url, contextLength: 256 });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'CorruptCheckpoint', JSON.stringify(r.error));
    assert.match(r.error!.message, /chat_template\.jinja: got an HTML page instead of the file/);
    assert.match(r.error!.hint ?? '', /SPA|fallback/i);
    assert.ok(!(await files(lying.url)).includes('chat_template.jinja'));
  });
});
