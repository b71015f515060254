/** Pixel shuffle vs a transcription of HF's view/permute/reshape chain (not of our index formula). */
import { pixelShuffle } from '../../src/kernels/pixel_shuffle.ts';
import { upload, readF32 } from '../../src/gpu/io.ts';
import { assertClose, expectReject, randomF32 } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

/** A strided view: shape + strides over a flat array, with HF's ops. Only what pixel_shuffle needs. */
class View {
  constructor(readonly data: Float32Array, readonly shape: number[], readonly strides: number[] = View.contiguous(shape)) {}
  static contiguous(shape: number[]): number[] {
    const st = new Array(shape.length).fill(1);
    for (let i = shape.length - 2; i >= 0; i--) st[i] = st[i + 1] * shape[i + 1];
    return st;
  }
  /** Materialises (what .reshape does to a non-contiguous tensor), then views with the new shape. */
  reshape(shape: number[]): View {
    const n = this.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    const idx = new Array(this.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let off = 0;
      for (let k = 0; k < idx.length; k++) off += idx[k] * this.strides[k];
      out[i] = this.data[off];
      for (let k = idx.length - 1; k >= 0; k--) {
        if (++idx[k] < this.shape[k]) break;
        idx[k] = 0;
      }
    }
    return new View(out, shape);
  }
  permute(order: number[]): View {
    return new View(this.data, order.map((o) => this.shape[o]), order.map((o) => this.strides[o]));
  }
}

/** HF Idefics3Connector.pixel_shuffle for h = w (its own code), extended with the same steps for h ≠ w. */
export function pixelShuffleRef(x: Float32Array, frames: number, h: number, w: number, D: number, s: number): Float32Array {
  let v = new View(x, [frames, h, w, D]);
  v = v.reshape([frames, h, w / s, D * s]);
  v = v.permute([0, 2, 1, 3]);
  v = v.reshape([frames, w / s, h / s, D * s * s]);
  v = v.permute([0, 2, 1, 3]);
  return v.reshape([frames, (h * w) / (s * s), D * s * s]).data;
}

async function check({ gpu, log }: CaseContext, frames: number, h: number, w: number, D: number, s: number) {
  const n = frames * h * w * D;
  const x = randomF32(n, frames * 1000 + h * 10 + D);
  const xb = upload(gpu, x), out = gpu.allocator.create(n * 4);
  const rec = gpu.recorder();
  pixelShuffle(gpu, rec, { x: xb, out, frames, h, w, D, s });
  rec.submit();
  const got = await readF32(gpu, out, n);
  assertClose(`pixel_shuffle ${frames}x${h}x${w}x${D} s${s}`, got, pixelShuffleRef(x, frames, h, w, D, s), { atol: 0, rtol: 0 }); // a permutation: exact
  log(`pixel_shuffle frames=${frames} ${h}x${w} D=${D} s=${s}: exact`);
  gpu.allocator.destroy(xb);
  gpu.allocator.destroy(out);
}

export const cases = defineCases([
  { name: 'one frame 4x4 D3 s2', run: (c) => check(c, 1, 4, 4, 3, 2) },
  { name: 'three frames 6x6 D5 s3', run: (c) => check(c, 3, 6, 6, 5, 3) },
  { name: 'SmolVLM grid 32x32 D24 s4, 2 frames', node: true, run: (c) => check(c, 2, 32, 32, 24, 4) },
  { name: 'rectangular 4x8 D7 s2', run: (c) => check(c, 2, 4, 8, 7, 2) },
  { name: 's1 is the identity', run: (c) => check(c, 1, 3, 5, 2, 1) },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const b = gpu.allocator.create(4096), o = gpu.allocator.create(4096);
      const rec = gpu.recorder();
      await expectReject('grid not divisible', () => pixelShuffle(gpu, rec, { x: b, out: o, frames: 1, h: 6, w: 6, D: 2, s: 4 }), 'ShapeMismatch');
      await expectReject('s=0', () => pixelShuffle(gpu, rec, { x: b, out: o, frames: 1, h: 4, w: 4, D: 2, s: 0 }), 'ShapeMismatch');
      await expectReject('short out', () => pixelShuffle(gpu, rec, { x: b, out: gpu.allocator.create(16), frames: 1, h: 4, w: 4, D: 2, s: 2 }), 'BufferTooSmall');
      await expectReject('out = x', () => pixelShuffle(gpu, rec, { x: b, out: b, frames: 1, h: 4, w: 4, D: 2, s: 2 }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(b);
      gpu.allocator.destroy(o);
    },
  },
]);
