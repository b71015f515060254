/** Copy kernel: exact copies (vec4 and u32 paths, offsets, a grid split over x/y), bad arguments. */
import { copy } from '../../src/kernels/copy.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { upload, readU32 } from '../../src/gpu/io.ts';
import { expectReject } from '../harness/check.ts';
import { defineCases, type CaseContext } from '../harness/cases.ts';

function pattern(words: number, seed: number): Uint32Array {
  const a = new Uint32Array(words);
  for (let i = 0; i < words; i++) a[i] = (Math.imul(i + 1, 2654435761) ^ seed) >>> 0;
  return a;
}

async function check({ gpu, log }: CaseContext, bytes: number, srcOffset: number, dstOffset: number) {
  const srcWords = (srcOffset + bytes) / 4 + 3, dstWords = (dstOffset + bytes) / 4 + 3;
  const src = pattern(srcWords, 1), before = pattern(dstWords, 2);
  const sb = upload(gpu, src), db = upload(gpu, before);
  const rec = gpu.recorder();
  copy(gpu, rec, { src: sb, dst: db, bytes, srcOffset, dstOffset });
  rec.submit();
  const got = await readU32(gpu, db, dstWords);
  // Exact: copied range equals the source, everything else untouched.
  for (let i = 0; i < dstWords; i++) {
    const inRange = i >= dstOffset / 4 && i < (dstOffset + bytes) / 4;
    const want = inRange ? src[i - dstOffset / 4 + srcOffset / 4] : before[i];
    if (got[i] !== want) throw new Error(`copy ${bytes} B (+${srcOffset} → +${dstOffset}): word ${i} is ${got[i]}, expected ${want}`);
  }
  log(`copy ${bytes} B src+${srcOffset} dst+${dstOffset} (${bytes % 16 || srcOffset % 16 || dstOffset % 16 ? 'u32' : 'vec4'}): exact`);
  gpu.allocator.destroy(sb);
  gpu.allocator.destroy(db);
}

export const cases = defineCases([
  { name: 'vec4 path 4 KiB', node: true, run: (c) => check(c, 4096, 0, 0) },
  { name: 'u32 path 1004 B', node: true, run: (c) => check(c, 1004, 0, 0) },
  { name: 'offsets 48 → 16, 160 B', run: (c) => check(c, 160, 48, 16) },
  { name: 'offsets 4 → 8, 36 B (u32)', run: (c) => check(c, 36, 4, 8) },
  { name: '1 MiB + 16', run: (c) => check(c, (1 << 20) + 16, 0, 0) },
  {
    // 65535 workgroups per dimension is 268 MB of vec4s; a context claiming a limit of 3 exercises the x/y split.
    name: 'grid split over x/y (limit 3 workgroups per dimension)',
    run: ({ gpu, log }) => {
      const small = new GpuContext(gpu.device, { ...gpu.caps, limits: { ...gpu.caps.limits, maxComputeWorkgroupsPerDimension: 3 } }, gpu.variants);
      return check({ gpu: small, log }, 8 * 256 * 16 - 48, 16, 0); // 8 workgroups → 3×3 grid
    },
  },
  {
    name: 'rejects bad arguments before dispatch',
    async run({ gpu }) {
      const a = gpu.allocator.create(64), b = gpu.allocator.create(64);
      const rec = gpu.recorder();
      await expectReject('bytes 0', () => copy(gpu, rec, { src: a, dst: b, bytes: 0 }), 'ShapeMismatch');
      await expectReject('bytes 6', () => copy(gpu, rec, { src: a, dst: b, bytes: 6 }), 'InvalidArgument');
      await expectReject('offset 2', () => copy(gpu, rec, { src: a, dst: b, bytes: 8, srcOffset: 2 }), 'InvalidArgument');
      await expectReject('too long', () => copy(gpu, rec, { src: a, dst: b, bytes: 64, dstOffset: 16 }), 'BufferTooSmall');
      await expectReject('same buffer', () => copy(gpu, rec, { src: a, dst: a, bytes: 16 }), 'InvalidArgument');
      if (rec.dispatchCount !== 0) throw new Error(`a dispatch was recorded (${rec.dispatchCount})`);
      gpu.allocator.destroy(a);
      gpu.allocator.destroy(b);
    },
  },
]);
