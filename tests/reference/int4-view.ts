/**
 * A checkpoint's weights as a load holds them under `formats`, for the f64 reference: read from the family's tensor
 * plan (the same `targetStorage` the loader uses), so a test compares the GPU against exactly what was uploaded —
 * int4 targets quantized (groups of 32, f16 scales) and dequantized, f16 token tables rounded to f16, a tied head
 * in int4 quantized from the token table (under its own name), everything else as stored.
 */
import { dequantizeInt4, quantizeInt4 } from '../../src/kernels/int4.ts';
import { roundToF16 } from '../../src/kernels/dtype.ts';
import { targetStorage, type TensorPlan, type WeightFormats } from '../../src/models/plan.ts';
import type { WeightMap } from './primitives-ref.ts';

const int4RoundTrip = (data: Float32Array, N: number) => dequantizeInt4(quantizeInt4(data, N, data.length / N, { group: 32, scaleType: 'f16' }));

/** The weights as loaded, and the relative L2 error int4 quantization put on the quantized tensors. */
export function loadedView(plan: TensorPlan, w: WeightMap, formats: WeightFormats = { vision: 'int4', text: 'int4' }): { map: WeightMap; relL2: number } {
  const out: WeightMap = new Map(w);
  let num = 0, den = 0;
  const quantized = (data: Float32Array, N: number) => {
    const d = int4RoundTrip(data, N);
    for (let i = 0; i < d.length; i++) {
      num += (d[i] - data[i]) ** 2;
      den += data[i] ** 2;
    }
    return d;
  };
  for (const t of plan.tensors) {
    if (t.isBias) continue;
    const v = w.get(t.name);
    if (!v) continue;
    const storage = targetStorage(plan.targets.get(t.target)!, formats);
    if (storage === 'int4') out.set(t.name, { shape: v.shape, data: quantized(v.data, t.shape[0]) });
    else if (storage === 'f16') out.set(t.name, { shape: v.shape, data: Float32Array.from(v.data, roundToF16) });
  }
  for (const target of plan.targets.values()) {
    if (!target.tiedTo || targetStorage(target, formats) !== 'int4') continue;
    const e = w.get(target.tiedTo)!;
    out.set(target.name, { shape: e.shape, data: quantized(e.data, target.N) });
  }
  return { map: out, relL2: Math.sqrt(num / den) };
}
