/**
 * The chat demo: pick a model (the embedded one works offline), drop an image, see its tiles and token
 * cost, ask questions, watch the answer stream, stop it, keep chatting. All model work runs in webvlm's
 * worker; this file only drives the page.
 */
import { createEngine, type ChatMessage, type ContentPart, type ImageDetail, type LoadProgress, type Usage, type WebVLMEngine } from '../src/index.ts';
import { renderMarkdown } from './markdown.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'), load: $<HTMLButtonElement>('load'), progress: $('progress'),
  bar: $<HTMLProgressElement>('progress-bar'), progressText: $('progress-text'), adapter: $('adapter'),
  banner: $('banner'), error: $('error'), drop: $('drop'), dropHint: $('drop-hint'), file: $<HTMLInputElement>('file'),
  stage: $('stage'), preview: $<HTMLImageElement>('preview'), overlay: $('overlay') as unknown as SVGSVGElement,
  detail: $<HTMLSelectElement>('detail'), maxImgTokens: $<HTMLInputElement>('max-tokens-img'), clearImage: $<HTMLButtonElement>('clear-image'),
  tileInfo: $('tile-info'), log: $('log'), composer: $<HTMLFormElement>('composer'), prompt: $<HTMLTextAreaElement>('prompt'),
  send: $<HTMLButtonElement>('send'), stop: $<HTMLButtonElement>('stop'), newChat: $<HTMLButtonElement>('new-chat'), stats: $('stats'),
};

interface LocalModel { id: string; label: string; random: boolean }
const HUB_MODELS = ['HuggingFaceTB/SmolVLM-256M-Instruct', 'HuggingFaceTB/SmolVLM-500M-Instruct'];

let engine: WebVLMEngine | null = null;
let localModels: LocalModel[] = [];
let image: Blob | null = null;
let imageSize: { width: number; height: number } | null = null;
let history: ChatMessage[] = [];
let controller: AbortController | null = null;
let loadMs = 0;

function showError(e: unknown) {
  const err = e as { code?: string; message?: string; hint?: string };
  const what: Record<string, string> = {
    WebGPUUnavailable: 'This browser has no usable WebGPU.',
    ModelNotFound: 'The model was not found.',
    OutOfMemory: 'Not enough GPU memory for this model.',
    DownloadFailed: 'Downloading the model failed.',
  };
  ui.error.hidden = false;
  ui.error.textContent = `${what[err.code ?? ''] ?? 'Something went wrong.'} ${err.message ?? String(e)}${err.hint ? ` — What to do: ${err.hint}` : ''}`;
  ui.error.dataset.code = err.code ?? 'Unknown';
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

async function init() {
  if (!('gpu' in navigator)) {
    showError({ code: 'WebGPUUnavailable', message: 'navigator.gpu is missing.', hint: 'Use Chrome or Edge 113+ (or enable WebGPU in your browser) on a machine with a supported GPU.' });
  }
  try {
    localModels = await (await fetch('/hub/local-models.json')).json();
  } catch {
    localModels = [];
  }
  for (const m of localModels) ui.model.add(new Option(`${m.label} — ${m.id}`, `local:${m.id}`));
  for (const id of HUB_MODELS) ui.model.add(new Option(`${id} (Hugging Face hub, needs internet)`, `hub:${id}`));
  if ('gpu' in navigator) await load();
}

function setProgress(p: LoadProgress) {
  ui.progress.hidden = p.phase === 'ready';
  ui.bar.value = p.total ? p.loaded / p.total : 0;
  const mb = (n: number) => (n / 1e6).toFixed(1);
  ui.progressText.textContent = p.total ? `${p.phase} ${p.file ?? ''} ${mb(p.loaded)} / ${mb(p.total)} MB` : `${p.phase} ${p.file ?? ''}`;
}

async function load() {
  clearError();
  const [kind, id] = ui.model.value.split(/:(.*)/s);
  const local = kind === 'local' ? localModels.find((m) => m.id === id) : undefined;
  ui.banner.hidden = !local?.random;
  ui.banner.textContent = local?.random ? 'Random weights: this checkpoint has the real SmolVLM layout but untrained weights, so its answers are noise. It exists to exercise the full pipeline offline.' : '';
  ui.load.disabled = ui.send.disabled = true;
  ui.progress.hidden = false;
  await engine?.dispose();
  engine = null;
  const t0 = performance.now();
  try {
    engine = await createEngine(id, { baseUrl: local ? `${location.origin}/hub` : undefined, onProgress: setProgress, contextLength: 2048 });
    loadMs = performance.now() - t0;
    ui.adapter.textContent = `${engine.info.adapter} · ${(engine.info.gpuBytes / 1e6).toFixed(0)} MB on GPU · loaded in ${(loadMs / 1000).toFixed(1)} s`;
    document.body.dataset.ready = 'true';
    ui.send.disabled = false;
    newChat();
    await updatePlan();
  } catch (e) {
    showError(e);
  } finally {
    ui.load.disabled = false;
    ui.progress.hidden = true;
  }
}

function visionOptions(): { detail: ImageDetail; maxImageTokens?: number } {
  const cap = Number(ui.maxImgTokens.value);
  return { detail: ui.detail.value as ImageDetail, maxImageTokens: cap > 0 ? cap : undefined };
}

function drawTiles(tiles: Array<[number, number, number, number]>, width: number, height: number) {
  ui.overlay.setAttribute('viewBox', `0 0 ${width} ${height}`);
  ui.overlay.setAttribute('preserveAspectRatio', 'none');
  ui.overlay.innerHTML = tiles.map(([x, y, w, h]) => `<rect x="${x}" y="${y}" width="${w}" height="${h}"></rect>`).join('');
}

async function updatePlan() {
  if (!engine || !imageSize) return;
  try {
    const p = await engine.plan(imageSize.width, imageSize.height, visionOptions());
    drawTiles(p.tiles, imageSize.width, imageSize.height);
    ui.tileInfo.textContent = `${p.rows ? `${p.rows}×${p.cols} tiles + global image` : 'one frame'} · ${p.frames} frames · ${p.visualTokens} visual tokens (${p.mode})`;
    ui.tileInfo.dataset.tokens = String(p.visualTokens);
  } catch (e) {
    showError(e);
  }
}

async function setImage(blob: Blob) {
  clearError();
  image = blob;
  const url = URL.createObjectURL(blob);
  ui.preview.src = url;
  try {
    await ui.preview.decode();
  } catch {
    showError({ code: 'ImageDecodeFailed', message: 'That file is not an image this browser can decode.', hint: 'Try a PNG, JPEG, WebP or GIF.' });
    image = null;
    return;
  }
  imageSize = { width: ui.preview.naturalWidth, height: ui.preview.naturalHeight };
  ui.stage.hidden = false;
  ui.dropHint.hidden = true;
  await updatePlan();
}

function addMessage(role: 'user' | 'assistant', html: string): HTMLElement {
  const el = document.createElement('div');
  el.className = `msg ${role}`;
  el.innerHTML = html;
  ui.log.append(el);
  ui.log.scrollTop = ui.log.scrollHeight;
  return el;
}

function newChat() {
  history = [];
  ui.log.innerHTML = '';
  ui.stats.textContent = '';
  void engine?.reset();
}

function showStats(u: Usage) {
  const f = (ms: number) => `${ms.toFixed(0)} ms`;
  ui.stats.textContent = `load ${(loadMs / 1000).toFixed(1)} s · image encode ${f(u.imageEncodeMs)} · time to first token ${f(u.timeToFirstTokenMs)} · ${u.decodeTokensPerSecond.toFixed(1)} tokens/s · ${u.visualTokens} visual tokens · ${u.promptTokens} prompt tokens (${u.cachedTokens} cached) · ${u.completionTokens} generated`;
  ui.stats.dataset.done = 'true';
  const img = u.images[u.images.length - 1];
  if (img && imageSize) drawTiles(img.tiles, img.width, img.height);
}

async function send(ev: Event) {
  ev.preventDefault();
  const text = ui.prompt.value.trim();
  if (!engine || !text) return;
  clearError();
  const parts: ContentPart[] = [];
  // The image goes with the first question about it; later turns refer back to it through the history.
  const firstWithImage = image && !history.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image'));
  if (firstWithImage && image) parts.push({ type: 'image', image, detail: visionOptions().detail });
  parts.push({ type: 'text', text });
  history.push({ role: 'user', content: parts });
  addMessage('user', renderMarkdown(text));
  ui.prompt.value = '';
  const out = addMessage('assistant', '');
  let answer = '';
  controller = new AbortController();
  ui.send.disabled = true;
  ui.stop.disabled = false;
  ui.stats.dataset.done = 'false';
  try {
    for await (const d of engine.chat({ messages: history, signal: controller.signal, maxTokens: 256, maxImageTokens: visionOptions().maxImageTokens })) {
      if (d.type === 'text') {
        answer += d.text;
        out.innerHTML = renderMarkdown(answer);
        out.dataset.chunks = String(Number(out.dataset.chunks ?? 0) + 1);
        ui.log.scrollTop = ui.log.scrollHeight;
      } else {
        showStats(d.usage);
        out.dataset.finish = d.finishReason;
      }
    }
    history.push({ role: 'assistant', content: answer });
  } catch (e) {
    showError(e);
    history.pop();
  } finally {
    controller = null;
    ui.send.disabled = false;
    ui.stop.disabled = true;
  }
}

ui.load.addEventListener('click', () => void load());
ui.composer.addEventListener('submit', (e) => void send(e));
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) ui.composer.requestSubmit();
});
ui.stop.addEventListener('click', () => controller?.abort());
ui.newChat.addEventListener('click', newChat);
ui.detail.addEventListener('change', () => void updatePlan());
ui.maxImgTokens.addEventListener('change', () => void updatePlan());
ui.clearImage.addEventListener('click', () => {
  image = null;
  imageSize = null;
  ui.stage.hidden = true;
  ui.dropHint.hidden = false;
  ui.tileInfo.textContent = '';
});
ui.file.addEventListener('change', () => ui.file.files?.[0] && void setImage(ui.file.files[0]));
ui.drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  ui.drop.classList.add('over');
});
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const f = e.dataTransfer?.files?.[0];
  if (f) void setImage(f);
});
document.addEventListener('paste', (e) => {
  const item = [...(e.clipboardData?.items ?? [])].find((i) => i.type.startsWith('image/'));
  const f = item?.getAsFile();
  if (f) void setImage(f);
});

void init();
