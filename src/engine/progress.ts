/**
 * One progress model for a whole load, for a progress bar: every event says the phase and file (with that file's own
 * bytes), and the load as a whole — `bytesLoaded` / `bytesTotal` over every file of the checkpoint (their sizes are
 * known once the files are opened, before any weight byte arrives) and a `fraction` in [0, 1] that only grows and is
 * 1 exactly at 'ready'. Downloading (and the parsing and quantizing that run as the bytes stream in) is 0 → 0.95;
 * first-use shader compilation (the warm-up pass) is 0.95 → 0.99.
 */
import type { LoadProgress } from '../types.ts';
import type { LoadProgressEvent } from './file-source.ts';

const DOWNLOAD_SHARE = 0.95;
const COMPILE_END = 0.99;

export type ProgressPhase = LoadProgress['phase'];

export class LoadProgressTracker {
  private readonly sizes = new Map<string, number>();
  private readonly done = new Map<string, number>();
  private fraction = 0;
  /** The checkpoint's file list is known (before that — config.json read for the memory estimate — no fraction). */
  private known = false;

  constructor(private readonly emit: (p: LoadProgress) => void) {}

  /** The checkpoint's files and sizes (null: unknown, counted as it arrives). */
  files(list: ReadonlyArray<{ name: string; size: number | null }>): void {
    for (const f of list) if (f.size !== null) this.sizes.set(f.name, f.size);
    this.known = true;
  }

  get bytesTotal(): number {
    let n = 0;
    for (const [name, size] of this.sizes) n += Math.max(size, this.done.get(name) ?? 0);
    for (const [name, got] of this.done) if (!this.sizes.has(name)) n += got;
    return n;
  }

  get bytesLoaded(): number {
    let n = 0;
    for (const v of this.done.values()) n += v;
    return n;
  }

  /** A file-level event from the loaders (download / parse / quantize / upload). */
  event = (e: LoadProgressEvent): void => {
    if (e.phase === 'download') this.done.set(e.file, Math.max(this.done.get(e.file) ?? 0, e.loaded));
    const total = this.bytesTotal;
    // Until the files are known, a small file read early would look like the whole load: no fraction yet.
    const byBytes = this.known && total > 0 ? (DOWNLOAD_SHARE * Math.min(this.bytesLoaded, total)) / total : 0;
    this.send(e.phase, e.file, e.loaded, e.total, byBytes);
  };

  /** Shader compilation (the warm-up pass): `step` of `steps`. */
  compile(step: number, steps: number): void {
    this.send('compile', undefined, step, steps, DOWNLOAD_SHARE + ((COMPILE_END - DOWNLOAD_SHARE) * step) / Math.max(1, steps));
  }

  ready(): void {
    this.fraction = 1;
    const total = this.bytesTotal;
    this.emit({ phase: 'ready', loaded: 1, total: 1, fraction: 1, bytesLoaded: total, bytesTotal: total });
  }

  private send(phase: ProgressPhase, file: string | undefined, loaded: number, total: number, f: number): void {
    // Monotone: a file that appears late (a shard named by the index) grows the total but never moves the bar back.
    this.fraction = Math.max(this.fraction, Math.min(f, COMPILE_END));
    this.emit({ phase, file, loaded, total, fraction: this.fraction, bytesLoaded: this.bytesLoaded, bytesTotal: this.bytesTotal });
  }
}
