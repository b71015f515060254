import { createEngine } from 'webvlm';

const engine = await createEngine('HuggingFaceTB/SmolVLM-256M-Instruct', {
  onProgress: (p) => console.log(p.phase, p.file ?? '', p.loaded, p.total),
});

const output = document.querySelector('#answer')!;
for await (const delta of engine.chat({
  messages: [{ role: 'user', content: [
    { type: 'image', image: document.querySelector('img')!, detail: 'low' },
    { type: 'text', text: 'What is in this picture?' },
  ] }],
  maxTokens: 32,
})) {
  if (delta.type === 'text') output.textContent += delta.text;
  else console.log('done', delta.finishReason, delta.usage); // tokens, visual tokens, timings, tiles per image
}
