import { createEngine, isWebVLMError } from 'webvlm';

const output = document.querySelector<HTMLElement>('#answer')!;
const stopButton = document.querySelector<HTMLButtonElement>('#stop')!;
const bar = document.querySelector<HTMLProgressElement>('progress')!;

try {
  const engine = await createEngine('HuggingFaceTB/SmolVLM-256M-Instruct', {
    // fraction: 0 → 1, only grows; phase: download → compile (first-use shaders) → ready; bytes over every file.
    onProgress: (p) => { bar.value = p.fraction; bar.title = `${p.phase} ${p.bytesLoaded} / ${p.bytesTotal} bytes`; },
  });

  const controller = new AbortController(); // one per request
  stopButton.onclick = () => controller.abort();
  let answer = '';
  for await (const delta of engine.chat({
    messages: [{ role: 'user', content: [
      { type: 'image', image: document.querySelector('img')!, detail: 'low' },
      { type: 'text', text: 'What is in this picture?' },
    ] }],
    maxTokens: 32,
    signal: controller.signal,
  })) {
    // The text starts with the space the model writes after "Assistant:"; trim it for display.
    if (delta.type === 'text') output.textContent = (answer += delta.text).trimStart();
    else console.log('done', delta.finishReason, delta.usage); // 'stop' | 'length' | 'abort'; tokens, timings, tiles
  }
} catch (err) {
  if (!isWebVLMError(err)) throw err;
  switch (err.code) {
    case 'WebGPUUnavailable': // no navigator.gpu (older browser, or a page not on https:// or localhost)
      output.textContent = 'This browser cannot run the model: it has no WebGPU.';
      break;
    case 'Aborted': // Stop before the first token; after it, the stream ends with finishReason 'abort'
      break;
    case 'ModelNotFound': // wrong id, revision or baseUrl; private or gated repo
    case 'DownloadFailed': // network down (retried and resumed first)
    case 'OutOfMemory': // the GPU cannot hold the model
    case 'QuotaExceeded': // browser storage full (the model is kept for the next visit)
      output.textContent = `${err.message} ${err.hint}`;
      break;
    default: // every failure is a WebVLMError with a stable code, a message and a hint
      output.textContent = `webvlm failed (${err.code}): ${err.message}`;
      console.error(err);
  }
}
