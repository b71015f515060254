/**
 * What runs where the model lives: the GPU device, the engine, and the calls the API makes on them. A Web Worker
 * exposes it through comlink (`worker.ts`); `createEngine(..., { inline: true })` calls it directly in the same
 * thread (Node, tests, pages that manage their own worker).
 *
 * Reliability duties here: files come through the browser cache (`CachedSource`) unless `cache: false` or there is no
 * Cache API; the GPU memory a model needs is estimated and checked before loading; a lost device is detected
 * (`GpuContext.lost`), the request that hit it fails with `DeviceLost`, and the next call re-creates the device and
 * reloads the model (from the cache). `dispose()` aborts the running request and waits for it before freeing memory.
 */
import { WebVLMError, isWebVLMError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { describeCaps } from '../gpu/device.ts';
import { Engine, type EnginePhase } from '../engine/engine.ts';
import { HubSource } from '../engine/hub.ts';
import type { FileSource, LoadProgressEvent } from '../engine/file-source.ts';
import { LoadProgressTracker } from '../engine/progress.ts';
import { CachedSource } from '../engine/cache.ts';
import { checkMemory, estimateCheckpointMemory } from '../engine/memory.ts';
import { formatsLabel, weightFormats } from '../models/plan.ts';
import type { ChatDelta, EngineInfo, ImagePlanReport, LoadProgress, VisionOptions } from '../types.ts';
import { decodeImage } from './image-decode.ts';
import type { WorkerApi, WorkerChatRequest, WorkerLoadOptions } from './protocol.ts';
import type { ChatMessage as EngineMessage } from '../input/tokenizer.ts';

export interface HostOptions {
  /** The `navigator.gpu` to use (Node/Dawn passes its own); default the global one. */
  gpu?: GPU;
  /** Ends the hosting thread (the worker's `self.close()`); the crash test hook calls it. */
  close?: () => void;
}

export function createHost(hostOpts: HostOptions = {}): WorkerApi {
  let gpu: GpuContext | null = null;
  let engine: Engine | null = null;
  /** What was loaded, to reload it after a device loss. */
  let loaded: { model: string; opts: WorkerLoadOptions } | null = null;
  let reloading: Promise<void> | null = null;
  let loadCtrl: AbortController | null = null;
  const controllers = new Map<number, AbortController>();
  /** Test hook: abort the next request as it enters this phase, as if the API's abort() arrived right then. */
  let abortAtPhase: EnginePhase | null = null;

  const canCache = () => typeof caches !== 'undefined' || (typeof navigator !== 'undefined' && !!navigator.storage);

  function source(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgressEvent) => void, signal: AbortSignal): FileSource {
    const hub = new HubSource(model, { baseUrl: opts.baseUrl, revision: opts.revision, signal, onProgress, headers: opts.headers, layout: opts.layout });
    if (opts.cache === false || !canCache()) return hub;
    return new CachedSource(hub, { model, revision: hub.revision, baseUrl: hub.baseUrl });
  }

  /** Device (new when there is none or it was lost), memory check, then the engine. */
  async function loadEngine(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgress) => void, signal: AbortSignal): Promise<EngineInfo> {
    if (gpu?.lost) gpu = null;
    gpu ??= await GpuContext.create({ gpu: hostOpts.gpu });
    const progress = new LoadProgressTracker(onProgress);
    const src = source(model, opts, progress.event, signal);
    const weights = opts.weights ?? 'int4';
    const memory = await estimateCheckpointMemory(src, { model, weights, contextLength: opts.contextLength, signal });
    const l = gpu.caps.limits;
    checkMemory(model, memory, { maxBufferSize: l.maxBufferSize, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, budget: opts.memoryBudget });
    engine = await Engine.create(gpu, model, {
      source: src, signal, weights, contextLength: opts.contextLength, warmup: opts.warmup,
      onProgress: progress.event, onFiles: (f) => progress.files(f), onCompile: (i, n) => progress.compile(i, n),
    });
    progress.ready();
    return {
      model, adapter: describeCaps(gpu.caps), weights: formatsLabel(weightFormats(weights)), gpuBytes: engine.gpuBytes, loadMs: engine.loadMs, contextLength: engine.contextLength,
      memory: { weights: memory.weights, kvCache: memory.kvCache, activations: memory.activations, total: memory.total },
    };
  }

  /** Aborts what runs on the engine, waits for it (bounded), then frees it. */
  async function dropEngine(): Promise<void> {
    const e = engine;
    engine = null;
    if (!e) return;
    try {
      await e.dispose();
    } catch {
      // Buffers of a lost device may refuse to be destroyed; they are gone either way.
    }
  }

  /** Before every call that uses the GPU: after a device loss, a new device and the model again (from the cache). */
  async function ready(): Promise<Engine> {
    if (gpu?.lost && loaded) {
      reloading ??= (async () => {
        await dropEngine();
        gpu = null;
        const ctrl = new AbortController();
        loadCtrl = ctrl;
        try {
          await loadEngine(loaded!.model, loaded!.opts, () => {}, ctrl.signal);
        } finally {
          loadCtrl = null;
        }
      })().finally(() => (reloading = null));
    }
    if (reloading) await reloading;
    if (!engine) throw new WebVLMError('Disposed', 'No model is loaded (the engine was disposed or its load failed).');
    return engine;
  }

  /** A failure while the device was going away is a `DeviceLost`, whatever the failing call threw. */
  async function asDeviceLost(e: unknown): Promise<unknown> {
    const g = gpu;
    if (!g) return e;
    // device.lost settles a task after the failing call; give it a moment.
    await Promise.race([g.device.lost, new Promise((r) => setTimeout(r, 100))]);
    if (!g.lost || (isWebVLMError(e) && e.code === 'DeviceLost')) return e;
    return new WebVLMError('DeviceLost', `The GPU device was lost during the request (${g.lost.reason || 'unknown'}: ${g.lost.message}).`, { cause: e });
  }

  const api: WorkerApi = {
    async hold(lockName: string): Promise<boolean> {
      // Held until this worker ends (terminate, close, crash): the main thread waits on the same lock to notice.
      if (typeof navigator === 'undefined' || !navigator.locks) return false;
      await new Promise<void>((granted) => {
        void navigator.locks.request(lockName, () => {
          granted();
          return new Promise<never>(() => {});
        });
      });
      return true;
    },

    async load(model: string, opts: WorkerLoadOptions, onProgress: (p: LoadProgress) => void): Promise<EngineInfo> {
      await dropEngine();
      loaded = null;
      const ctrl = new AbortController();
      loadCtrl = ctrl;
      try {
        const info = await loadEngine(model, opts, onProgress, ctrl.signal);
        loaded = { model, opts };
        return info;
      } catch (e) {
        await dropEngine();
        throw await asDeviceLost(e);
      } finally {
        loadCtrl = null;
      }
    },

    abortLoad() {
      loadCtrl?.abort();
    },

    async chat(id: number, req: WorkerChatRequest, onDelta: (d: ChatDelta) => void): Promise<void> {
      // Registered before any await, so an abort sent right after this call is never lost.
      const ctrl = new AbortController();
      controllers.set(id, ctrl);
      try {
        const images = await Promise.all(req.images.map((im) => decodeImage(im, ctrl.signal)));
        if (ctrl.signal.aborted) throw new WebVLMError('Aborted', 'The request was aborted while its images were decoded.');
        const eng = await ready();
        const stream = eng.chat({
          messages: req.messages as unknown as EngineMessage[], images, signal: ctrl.signal,
          maxTokens: req.maxTokens, temperature: req.temperature, topK: req.topK, topP: req.topP,
          repetitionPenalty: req.repetitionPenalty, seed: req.seed, stop: req.stop, detail: req.detail, maxImageTokens: req.maxImageTokens, compression: req.compression,
          onPhase: (phase) => {
            if (phase !== abortAtPhase) return;
            abortAtPhase = null;
            api.abort(id);
          },
        });
        // Deltas are one-way calls (generation never waits for the main thread), except the last: awaiting it
        // guarantees every delta arrived (they share one port) before chat() resolves on another.
        for await (const d of stream) {
          if (d.type === 'done') await onDelta(d);
          else void onDelta(d);
        }
      } catch (e) {
        throw await asDeviceLost(e);
      } finally {
        controllers.delete(id);
      }
    },

    async plan(width: number, height: number, opts: VisionOptions): Promise<ImagePlanReport> {
      return (await ready()).plan(width, height, opts);
    },

    abort(id: number) {
      controllers.get(id)?.abort();
    },

    async reset() {
      // Queued behind the running request (the engine's own queue): a reset never changes an answer being written.
      await engine?.reset();
    },

    async dispose() {
      loaded = null;
      loadCtrl?.abort();
      for (const c of controllers.values()) c.abort();
      await dropEngine();
      gpu?.destroy();
      gpu = null;
    },

    // ---- Test-only hooks (reached through the API's TEST_HOOKS symbol; not part of the public API) ----

    testLoseDevice() {
      gpu?.device.destroy();
    },

    testCrash() {
      hostOpts.close?.();
    },

    testAbortAtPhase(phase: EnginePhase) {
      abortAtPhase = phase;
    },
  };
  return api;
}
