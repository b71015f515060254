/** The Web Worker: owns the GPU device and the engine; the main thread talks to it through comlink. */
import * as Comlink from 'comlink';
import { WebVLMError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { describeCaps } from '../gpu/device.ts';
import { Engine } from '../engine/engine.ts';
import type { ChatDelta, EngineInfo, ImagePlanReport, LoadProgress, VisionOptions } from '../api/types.ts';
import { decodeImage } from './image-decode.ts';
import { installErrorTransfer, type WorkerApi, type WorkerChatRequest, type WorkerLoadOptions } from './protocol.ts';
import type { ChatMessage as EngineMessage } from '../engine/tokenizer.ts';

installErrorTransfer();

let gpu: GpuContext | null = null;
let engine: Engine | null = null;
const controllers = new Map<number, AbortController>();

const api: WorkerApi = {
  async load(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgress) => void): Promise<EngineInfo> {
    engine?.dispose();
    gpu ??= await GpuContext.create();
    engine = await Engine.create(gpu, model, { ...opts, onProgress: (p) => void onProgress(p) });
    onProgress({ phase: 'ready', loaded: 1, total: 1 });
    return { model, adapter: describeCaps(gpu.caps), weights: opts.weights ?? 'int4', gpuBytes: engine.gpuBytes, loadMs: engine.loadMs, contextLength: engine.contextLength };
  },

  async chat(id: number, req: WorkerChatRequest, onDelta: (d: ChatDelta) => void): Promise<void> {
    if (!engine) throw new WebVLMError('InvalidArgument', 'No model is loaded.');
    const ctrl = new AbortController();
    controllers.set(id, ctrl);
    try {
      const images = await Promise.all(req.images.map((im) => decodeImage(im, ctrl.signal)));
      const stream = engine.chat({
        messages: req.messages as unknown as EngineMessage[], images, signal: ctrl.signal,
        maxTokens: req.maxTokens, temperature: req.temperature, topK: req.topK, topP: req.topP,
        repetitionPenalty: req.repetitionPenalty, seed: req.seed, stop: req.stop, detail: req.detail, maxImageTokens: req.maxImageTokens,
      });
      // Deltas are one-way calls (generation never waits for the main thread), except the last: awaiting it
      // guarantees every delta arrived (they share one port) before chat() resolves on another.
      for await (const d of stream) {
        if (d.type === 'done') await onDelta(d);
        else void onDelta(d);
      }
    } finally {
      controllers.delete(id);
    }
  },

  plan(width: number, height: number, opts: VisionOptions): ImagePlanReport {
    if (!engine) throw new WebVLMError('InvalidArgument', 'No model is loaded.');
    return engine.plan(width, height, opts);
  },

  abort(id: number) {
    controllers.get(id)?.abort();
  },

  reset() {
    engine?.reset();
  },

  dispose() {
    engine?.dispose();
    engine = null;
    gpu?.destroy();
    gpu = null;
  },
};

Comlink.expose(api);
