/**
 * The chat demo: pick a model (the embedded one works offline), drop an image (or take one with the camera),
 * see its tiles and token cost, ask questions, watch the answer stream, stop it, keep chatting. All model work
 * runs in webvlm's worker; this file only drives the page, so the page stays responsive while generating
 * (answer rendering is batched to one update per animation frame).
 *
 * `data-*` attributes state what the page is doing (for tests and styling): body[data-ready|data-model|
 * data-generating], #overlay[data-tiles], #tile-info[data-tokens|data-frames], .msg.assistant[data-chunks|
 * data-finish], #stats[data-done|data-cached|data-completion|data-finish], #error[data-code].
 * `?model=<repo id>` preselects a model (a local one by id, else that id on the Hugging Face hub).
 */
import { createEngine, type ChatMessage, type ContentPart, type ImageDetail, type LoadProgress, type Usage, type WebVLMEngine } from '../src/index.ts';
import { renderMarkdown } from './markdown.ts';
import { describeError } from './errors.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'), load: $<HTMLButtonElement>('load'), progress: $('progress'),
  bar: $<HTMLProgressElement>('progress-bar'), progressText: $('progress-text'), adapter: $('adapter'),
  banner: $('banner'), error: $('error'), errorTitle: $('error-title'), errorMessage: $('error-message'), errorTodo: $('error-todo'),
  drop: $('drop'), dropHint: $('drop-hint'), file: $<HTMLInputElement>('file'),
  stage: $('stage'), preview: $<HTMLImageElement>('preview'), overlay: $('overlay') as unknown as SVGSVGElement,
  camera: $<HTMLButtonElement>('camera'), cameraView: $('camera-view'), video: $<HTMLVideoElement>('video'),
  snap: $<HTMLButtonElement>('snap'), cameraClose: $<HTMLButtonElement>('camera-close'),
  detail: $<HTMLSelectElement>('detail'), maxImgTokens: $<HTMLInputElement>('max-tokens-img'), compression: $<HTMLSelectElement>('compression'), clearImage: $<HTMLButtonElement>('clear-image'),
  tileInfo: $('tile-info'), log: $('log'), composer: $<HTMLFormElement>('composer'), prompt: $<HTMLTextAreaElement>('prompt'),
  send: $<HTMLButtonElement>('send'), stop: $<HTMLButtonElement>('stop'), newChat: $<HTMLButtonElement>('new-chat'),
  maxTokens: $<HTMLInputElement>('max-tokens'), stats: $('stats'),
};

interface LocalModel { id: string; label: string; random: boolean }
const HUB_MODELS = ['HuggingFaceTB/SmolVLM-256M-Instruct', 'HuggingFaceTB/SmolVLM-500M-Instruct'];
let noWebGPU = !('gpu' in navigator && navigator.gpu);

let engine: WebVLMEngine | null = null;
let localModels: LocalModel[] = [];
let image: Blob | null = null;
/** The current image still has to go out with the next question (a later image joins the same conversation). */
let imagePending = false;
let imageSize: { width: number; height: number } | null = null;
let history: ChatMessage[] = [];
let controller: AbortController | null = null;
/** Settles when the answer being generated has ended (engine.reset() is not queued behind a running chat). */
let running: Promise<void> | null = null;
let loadMs = 0;
let camera: MediaStream | null = null;

function selected(): { id: string; local?: LocalModel } {
  const [kind, id] = ui.model.value.split(/:(.*)/s);
  return { id, local: kind === 'local' ? localModels.find((m) => m.id === id) : undefined };
}

function showError(e: unknown) {
  const d = describeError(e, { localModel: !!selected().local });
  ui.error.hidden = false;
  ui.errorTitle.textContent = d.title;
  ui.errorMessage.textContent = d.message;
  ui.errorTodo.textContent = `What to do: ${d.todo}`;
  ui.error.dataset.code = d.code;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorTitle.textContent = ui.errorMessage.textContent = ui.errorTodo.textContent = '';
  delete ui.error.dataset.code;
}

async function init() {
  try {
    localModels = await (await fetch('/hub/local-models.json')).json();
  } catch {
    localModels = [];
  }
  // The trained tiny model comes first when it exists (hub-middleware.ts orders them), else the random test checkpoint.
  for (const m of localModels) ui.model.add(new Option(`${m.label} — ${m.id}`, `local:${m.id}`));
  for (const id of HUB_MODELS) ui.model.add(new Option(`${id} (Hugging Face hub, needs internet)`, `hub:${id}`));
  const wanted = new URLSearchParams(location.search).get('model');
  if (wanted) {
    const value = localModels.some((m) => m.id === wanted) ? `local:${wanted}` : `hub:${wanted}`;
    if (![...ui.model.options].some((o) => o.value === value)) ui.model.add(new Option(`${wanted} (Hugging Face hub)`, value));
    ui.model.value = value;
  }
  if (typeof navigator.mediaDevices?.getUserMedia === 'function') ui.camera.hidden = false;
  if (noWebGPU) {
    ui.load.disabled = true;
    showError({ code: 'WebGPUUnavailable', message: 'navigator.gpu is missing: this browser has WebGPU turned off or does not implement it.' });
    return;
  }
  if (!wanted && !localModels.length) {
    showError({ code: 'ModelNotFound', message: 'No embedded model was found under models/.' });
    return;
  }
  await load();
}

const PHASE_WORDS: Record<LoadProgress['phase'], string> = {
  download: 'Downloading', parse: 'Reading', quantize: 'Quantizing to int4', upload: 'Uploading to the GPU', compile: 'Compiling shaders (first use)', ready: 'Ready',
};

function setProgress(p: LoadProgress) {
  ui.progress.hidden = p.phase === 'ready';
  ui.bar.value = p.fraction;
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const bytes = p.bytesTotal ? ` · ${mb(p.bytesLoaded)} / ${mb(p.bytesTotal)} MB` : '';
  ui.progressText.textContent = `${PHASE_WORDS[p.phase]}${p.phase === 'compile' ? '' : p.file ? ` ${p.file}` : ''} · ${Math.round(100 * p.fraction)} %${bytes}`;
}

async function load() {
  clearError();
  controller?.abort();
  const { id, local } = selected();
  ui.banner.hidden = !local?.random;
  ui.banner.textContent = local?.random ? 'Random weights: this checkpoint has the real SmolVLM layout but untrained weights, so its answers are noise. It exists to exercise the full pipeline offline.' : '';
  ui.load.disabled = ui.send.disabled = true;
  ui.progress.hidden = false;
  delete document.body.dataset.ready;
  document.body.dataset.model = id;
  const old = engine;
  engine = null;
  await old?.dispose();
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
    // Without WebGPU no model can load: leave Load off rather than invite retries.
    noWebGPU = (e as { code?: string }).code === 'WebGPUUnavailable';
  } finally {
    ui.load.disabled = noWebGPU;
    ui.progress.hidden = true;
  }
}

function visionOptions(): { detail: ImageDetail; maxImageTokens?: number; compression?: number } {
  const cap = Number(ui.maxImgTokens.value);
  const factor = Number(ui.compression.value);
  return { detail: ui.detail.value as ImageDetail, maxImageTokens: cap > 0 ? cap : undefined, compression: factor > 1 ? factor : undefined };
}

function drawTiles(tiles: Array<[number, number, number, number]>, width: number, height: number) {
  ui.overlay.setAttribute('viewBox', `0 0 ${width} ${height}`);
  ui.overlay.setAttribute('preserveAspectRatio', 'none');
  ui.overlay.innerHTML = tiles.map(([x, y, w, h]) => `<rect x="${x}" y="${y}" width="${w}" height="${h}"></rect>`).join('');
  ui.overlay.dataset.tiles = String(tiles.length);
}

async function updatePlan() {
  if (!engine || !imageSize) return;
  try {
    const p = await engine.plan(imageSize.width, imageSize.height, visionOptions());
    drawTiles(p.tiles, imageSize.width, imageSize.height);
    const compressed = p.visualTokens !== p.visualTokensBeforeCompression ? ` (${p.visualTokensBeforeCompression} before compression)` : '';
    ui.tileInfo.textContent = `${p.rows ? `${p.rows}×${p.cols} tiles + global image · ${p.frames} frames` : 'one frame'} · ${p.visualTokens} visual tokens${compressed} · ${p.mode} tiling`;
    ui.tileInfo.dataset.tokens = String(p.visualTokens);
    ui.tileInfo.dataset.frames = String(p.frames);
  } catch (e) {
    showError(e);
  }
}

async function setImage(blob: Blob) {
  clearError();
  const url = URL.createObjectURL(blob);
  ui.preview.src = url;
  try {
    await ui.preview.decode();
  } catch {
    showError({ code: 'ImageDecodeFailed', message: 'That file is not an image this browser can decode.' });
    return;
  }
  image = blob;
  imagePending = true;
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
  controller?.abort();
  history = [];
  imagePending = !!image;
  ui.log.innerHTML = '';
  ui.stats.textContent = '';
  delete ui.stats.dataset.done;
  const e = engine;
  void (running ?? Promise.resolve()).then(() => e?.reset()).catch(showError);
}

function showStats(u: Usage, finish: string) {
  const f = (ms: number) => `${ms.toFixed(0)} ms`;
  ui.stats.textContent = `load ${(loadMs / 1000).toFixed(1)} s · image encode ${f(u.imageEncodeMs)} · time to first token ${f(u.timeToFirstTokenMs)} · ${u.completionTokens > 1 ? `${u.decodeTokensPerSecond.toFixed(1)} tokens/s` : 'no decode steps'} · ${u.visualTokens} visual tokens · ${u.promptTokens} prompt tokens (${u.cachedTokens} cached) · ${u.completionTokens} generated${finish === 'abort' ? ' · stopped' : ''}`;
  ui.stats.dataset.cached = String(u.cachedTokens);
  ui.stats.dataset.completion = String(u.completionTokens);
  ui.stats.dataset.finish = finish;
  ui.stats.dataset.done = 'true';
  const img = u.images[u.images.length - 1];
  if (img && imageSize) drawTiles(img.tiles, img.width, img.height);
}

async function send(ev: Event) {
  ev.preventDefault();
  const text = ui.prompt.value.trim();
  if (!engine || !text || controller) return;
  clearError();
  const parts: ContentPart[] = [];
  // The image goes with the first question about it; later turns refer back to it through the history.
  const withImage = imagePending && image;
  if (withImage) parts.push({ type: 'image', image: withImage, detail: visionOptions().detail });
  parts.push({ type: 'text', text });
  history.push({ role: 'user', content: parts });
  // New chat (or a model switch) during the answer replaces `history`; this turn then no longer belongs to it.
  const conversation = history;
  addMessage('user', renderMarkdown(text));
  ui.prompt.value = '';
  const out = addMessage('assistant', '');
  out.classList.add('pending');
  let answer = '';
  let frame = 0;
  const render = () => {
    frame = 0;
    out.innerHTML = renderMarkdown(answer);
    ui.log.scrollTop = ui.log.scrollHeight;
  };
  const ctrl = (controller = new AbortController());
  let ended!: () => void;
  running = new Promise<void>((r) => (ended = r));
  const maxTokens = Math.max(1, Math.floor(Number(ui.maxTokens.value) || 256));
  ui.send.disabled = true;
  ui.stop.disabled = false;
  ui.stats.dataset.done = 'false';
  document.body.dataset.generating = 'true';
  try {
    const { maxImageTokens, compression } = visionOptions();
    for await (const d of engine.chat({ messages: history, signal: ctrl.signal, maxTokens, maxImageTokens, compression })) {
      if (d.type === 'text') {
        answer += d.text;
        out.classList.remove('pending');
        out.dataset.chunks = String(Number(out.dataset.chunks ?? 0) + 1);
        // One DOM update per frame however fast tokens arrive.
        frame ||= requestAnimationFrame(render);
      } else {
        cancelAnimationFrame(frame);
        render();
        out.dataset.finish = d.finishReason;
        showStats(d.usage, d.finishReason);
      }
    }
    if (history === conversation) {
      conversation.push({ role: 'assistant', content: answer });
      if (withImage) imagePending = false;
    }
  } catch (e) {
    cancelAnimationFrame(frame);
    out.remove();
    // Aborted before the first token: nothing to keep; anything else is shown.
    if ((e as { code?: string }).code !== 'Aborted') showError(e);
    if (history === conversation) conversation.pop();
  } finally {
    ended();
    running = null;
    out.classList.remove('pending');
    controller = null;
    ui.send.disabled = !engine;
    ui.stop.disabled = true;
    delete document.body.dataset.generating;
  }
}

async function openCamera() {
  clearError();
  try {
    camera = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    const name = (e as DOMException).name;
    showError({
      code: 'CameraUnavailable',
      message: name === 'NotAllowedError' ? 'Camera access was denied.' : `No camera could be opened (${name}).`,
    });
    return;
  }
  ui.video.srcObject = camera;
  ui.cameraView.hidden = false;
  ui.stage.hidden = ui.dropHint.hidden = true;
}

function closeCamera() {
  for (const t of camera?.getTracks() ?? []) t.stop();
  camera = null;
  ui.video.srcObject = null;
  ui.cameraView.hidden = true;
  ui.stage.hidden = !image;
  ui.dropHint.hidden = !!image;
}

async function snap() {
  const { videoWidth: w, videoHeight: h } = ui.video;
  if (!w || !h) return;
  const canvas = new OffscreenCanvas(w, h);
  canvas.getContext('2d')!.drawImage(ui.video, 0, 0);
  const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
  closeCamera();
  await setImage(blob);
}

ui.load.addEventListener('click', () => void load());
ui.composer.addEventListener('submit', (e) => void send(e));
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener('click', () => controller?.abort());
ui.newChat.addEventListener('click', newChat);
ui.detail.addEventListener('change', () => void updatePlan());
ui.maxImgTokens.addEventListener('change', () => void updatePlan());
ui.compression.addEventListener('change', () => void updatePlan());
ui.camera.addEventListener('click', () => void openCamera());
ui.snap.addEventListener('click', () => void snap());
ui.cameraClose.addEventListener('click', closeCamera);
ui.clearImage.addEventListener('click', () => {
  image = null;
  imagePending = false;
  imageSize = null;
  ui.stage.hidden = true;
  ui.dropHint.hidden = false;
  ui.tileInfo.textContent = '';
  ui.overlay.innerHTML = '';
  delete ui.overlay.dataset.tiles;
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
