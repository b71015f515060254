/** Awaits `p` and asserts it rejects with a `WebVLMError` of `code` (and a message matching `msg`); returns the error. */
import assert from 'node:assert/strict';
import { isWebVLMError, WebVLMError, type WebVLMErrorCode } from '../../src/errors.ts';

export async function expectCode(p: Promise<unknown>, code: WebVLMErrorCode, msg?: RegExp): Promise<WebVLMError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isWebVLMError(e, code), `expected ${code}, got ${e instanceof WebVLMError ? `${e.code}: ${e.message}` : String(e)}`);
    if (msg) assert.match((e as Error).message, msg);
    return e as WebVLMError;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}
