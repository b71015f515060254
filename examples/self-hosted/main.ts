import { createEngine, isWebVLMError } from 'webvlm';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const answer = $<HTMLParagraphElement>('answer');
const send = $<HTMLButtonElement>('send');
const stop = $<HTMLButtonElement>('stop');

function show(err: unknown) {
  status.textContent = isWebVLMError(err) ? `${err.code}: ${err.message} ${err.hint}` : String(err);
  console.error('failed', err);
}

// The files are in public/models/webvlm/tiny-smolvlm/resolve/main/ (`npm run model`), served by this site in the
// hub layout; baseUrl must be absolute (the worker would resolve a relative one against its own script).
const engine = await createEngine('webvlm/tiny-smolvlm', {
  baseUrl: new URL('models', document.baseURI).href,
  onProgress: (p) => (status.textContent = `${p.phase} ${p.file ?? ''}`),
}).catch((err) => {
  show(err);
  throw err;
});
status.textContent = `ready: ${engine.info.model} on ${engine.info.adapter}`;
send.disabled = false;

let controller: AbortController | null = null;
stop.onclick = () => controller?.abort();
$<HTMLFormElement>('ask').onsubmit = async (ev) => {
  ev.preventDefault();
  controller = new AbortController();
  send.disabled = true;
  stop.disabled = false;
  answer.textContent = '';
  let text = '';
  try {
    for await (const delta of engine.chat({
      messages: [{ role: 'user', content: [
        { type: 'image', image: $<HTMLImageElement>('photo') },
        { type: 'text', text: $<HTMLInputElement>('question').value },
      ] }],
      maxTokens: 64,
      signal: controller.signal,
    })) {
      // The model's text starts with the space it writes after "Assistant:".
      if (delta.type === 'text') answer.textContent = (text += delta.text).trimStart();
      else {
        status.textContent = `${delta.finishReason}: ${delta.usage.completionTokens} tokens`;
        console.log('done', JSON.stringify({ text: delta.text, finishReason: delta.finishReason, usage: delta.usage }));
      }
    }
  } catch (err) {
    if (!isWebVLMError(err, 'Aborted')) show(err);
  } finally {
    send.disabled = false;
    stop.disabled = true;
  }
};
