/**
 * Exact-match accuracy of the tiny trained model *in webvlm* (Node, Dawn) on the committed held-out set, for a
 * weight format, a tiling mode (detail) and a compression factor, next to the visual tokens it cost. Used by the
 * CI accuracy test (tests/e2e/tiny-accuracy.test.ts) and, as a script, for the README's quality-vs-tokens table:
 *
 *   node --import ./tests/node/register.mjs models/tiny/webvlm-eval.ts [--limit N]   (writes models/tiny/webvlm_eval.json)
 *
 * Same protocol as models/tiny/eval.py (torch): greedy decoding, the answer is the decoded text trimmed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/engine.ts';
import type { ImageDetail } from '../../src/types.ts';
import type { WeightFormat } from '../../src/models/plan.ts';
import { decodePng } from '../../tests/helpers/png.ts';
import type { PixelImage } from '../../src/input/resample.ts';

export const TINY_DIR = fileURLToPath(new URL('./', import.meta.url));
export const TINY_REPO = 'webvlm/tiny-smolvlm';

export interface HeldoutRow { image: string; question: string; answer: string; task: string }

export function readHeldout(limit = 0): Array<HeldoutRow & { pixels: PixelImage }> {
  const rows = readFileSync(`${TINY_DIR}heldout/heldout.jsonl`, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as HeldoutRow);
  return (limit ? rows.slice(0, limit) : rows).map((r) => ({ ...r, pixels: decodePng(readFileSync(`${TINY_DIR}heldout/${r.image}`)) }));
}

export interface EvalSetting { weights: WeightFormat; detail: ImageDetail; compression: number }

export interface EvalResult extends EvalSetting {
  n: number;
  correct: number;
  accuracy: number;
  perTask: Record<string, { n: number; correct: number; accuracy: number }>;
  /** Mean visual tokens per image, and mean frames. */
  visualTokens: number;
  frames: number;
  seconds: number;
  wrong: Array<{ image: string; task: string; want: string; got: string }>;
}

/** Runs every held-out row through `engine` (fresh conversation each), greedy, up to 6 new tokens. */
/** `s.weights` names the format `engine` was created with (reported, not applied). */
export async function evaluate(engine: Engine, rows: ReturnType<typeof readHeldout>, s: EvalSetting): Promise<EvalResult> {
  const t0 = performance.now();
  const perTask: EvalResult['perTask'] = {};
  const wrong: EvalResult['wrong'] = [];
  let correct = 0, tokens = 0, frames = 0;
  for (const r of rows) {
    engine.reset();
    let text = '';
    for await (const d of engine.chat({
      messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: r.question }] }],
      images: [r.pixels], detail: s.detail, compression: s.compression, maxTokens: 6,
    })) {
      if (d.type === 'done') {
        text = d.text.trim();
        tokens += d.usage.visualTokens;
        frames += d.usage.images.reduce((a, im) => a + im.frames, 0);
      }
    }
    const ok = text === r.answer;
    const t = (perTask[r.task] ??= { n: 0, correct: 0, accuracy: 0 });
    t.n++;
    if (ok) t.correct++, correct++;
    else wrong.push({ image: r.image, task: r.task, want: r.answer, got: text });
  }
  for (const t of Object.values(perTask)) t.accuracy = t.correct / t.n;
  return {
    ...s, n: rows.length, correct, accuracy: correct / rows.length, perTask,
    visualTokens: tokens / rows.length, frames: frames / rows.length, seconds: (performance.now() - t0) / 1000, wrong,
  };
}

export const SETTINGS: EvalSetting[] = [
  { weights: 'f32', detail: 'high', compression: 1 },
  { weights: 'int4', detail: 'high', compression: 1 },
  { weights: 'f32', detail: 'auto', compression: 1 },
  { weights: 'f32', detail: 'low', compression: 1 },
  { weights: 'f32', detail: 'high', compression: 2 },
  { weights: 'int4', detail: 'auto', compression: 2 },
];

const MODE = { high: "'model' (detail high)", auto: "'native' (detail auto)", low: 'global only (detail low)' } as const;

export function markdownTable(results: EvalResult[]): string {
  const tasks = Object.keys(results[0].perTask);
  const lines = [
    `| weights | tiling | compression | visual tokens / image | frames | accuracy | ${tasks.join(' | ')} |`,
    `|---|---|---|---|---|---|${tasks.map(() => '---').join('|')}|`,
  ];
  for (const r of results) {
    lines.push(`| ${r.weights} | ${MODE[r.detail]} | ${r.compression > 1 ? `×${r.compression}` : 'off'} | ${r.visualTokens.toFixed(1)} | ${r.frames.toFixed(1)} | ` +
      `**${(100 * r.accuracy).toFixed(1)} %** | ${tasks.map((t) => `${(100 * r.perTask[t].accuracy).toFixed(0)}`).join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main() {
  const { dawnGpu } = await import('../../tests/harness/dawn.ts');
  const { GpuContext } = await import('../../src/gpu/context.ts');
  const { DirSource } = await import('../../tests/helpers/dir-source.ts');
  const li = process.argv.indexOf('--limit');
  const rows = readHeldout(li > 0 ? Number(process.argv[li + 1]) : 0);
  const g = await dawnGpu();
  if (!g) throw new Error('no Dawn adapter (see ../shared/webgpu-on-cpu.md)');
  const gpu = await GpuContext.create({ gpu: g });
  const results: EvalResult[] = [];
  for (const weights of ['f32', 'int4'] as const) {
    const engine = await Engine.create(gpu, TINY_REPO, { weights, contextLength: 512, source: new DirSource(`${TINY_DIR}checkpoint`) });
    for (const s of SETTINGS.filter((x) => x.weights === weights)) {
      const r = await evaluate(engine, rows, s);
      console.log(`${weights} detail=${s.detail} compression=${s.compression}: ${(100 * r.accuracy).toFixed(1)} % (${r.correct}/${r.n}), ` +
        `${r.visualTokens.toFixed(1)} visual tokens/image, ${r.seconds.toFixed(0)} s`);
      results.push(r);
    }
    engine.dispose();
  }
  gpu.destroy();
  const order = (r: EvalResult) => SETTINGS.findIndex((s) => s.weights === r.weights && s.detail === r.detail && s.compression === r.compression);
  results.sort((a, b) => order(a) - order(b));
  console.log(markdownTable(results));
  writeFileSync(`${TINY_DIR}webvlm_eval.json`, JSON.stringify({ adapter: 'Dawn (Node)', n: rows.length, results }, null, 1) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
