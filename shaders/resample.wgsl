// Image preprocessing on packed RGBA8 pixels (one u32 per pixel, R in the low byte), bit-exact with
// Pillow's 8-bit resampler (src/engine/resample.ts is the reference):
//  - resample_h / resample_v: one pass of a separable resize, driven by tap tables computed on the CPU
//    (the same 22-bit fixed-point taps Pillow uses). Sums are i32 starting at ½ (1 << 21), then >> 22
//    and clamp to 0…255, exactly Pillow's `clip8`; i32 arithmetic wraps like Pillow's C ints.
//    RGBA is resized premultiplied (Pillow converts RGBA → RGBa → resize → RGBA): the first pass of a
//    step premultiplies what it reads, the last one unpremultiplies what it writes.
//  - write_frames: crops M×M frames (row-major tiles of an image `cols` tiles wide), optionally composites
//    on white (transformers' convert_rgb), maps each byte through the normalisation table (f32) and writes
//    channels-first [frame, 3, M, M].
// Tap table of a pass with n outputs, at word `tap_off` of `taps`: start[n], count[n], then the weights
// tap-major (weight i of output x at 2n + i·n + x, so neighbouring invocations read neighbouring words).

struct Pass {
  in_w: u32,     // source row length in pixels
  out_w: u32,    // output row length
  out_h: u32,    // output rows
  y0: u32,       // H: first source row; V: subtracted from the tap starts (first row the H pass made)
  tap_off: u32,
  _p0: u32,
  flags: u32,    // bit 0: premultiply what is read; bit 1: unpremultiply what is written
  _p1: u32,
}

struct Frames {
  src_w: u32,    // width of the image the frames are cut from
  cols: u32,     // tiles per row of that image
  size: u32,     // M
  frame0: u32,   // output frame index of this dispatch's first frame
  out_off: u32,  // f32 offset of frame 0 in `outp`
  composite: u32,
  tile0: u32,    // tile index of this dispatch's z = 0 (dispatches are split at the z limit)
  _p0: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;     // resample_h, resample_v
@group(0) @binding(1) var<storage, read_write> outp: array<f32>;    // write_frames
@group(0) @binding(2) var<storage, read> taps: array<i32>;          // resample_h, resample_v
@group(0) @binding(2) var<storage, read> lut: array<f32>;           // write_frames: 3 × 256
@group(0) @binding(3) var<uniform> p: Pass;
@group(0) @binding(3) var<uniform> f: Frames;

const HALF: i32 = 1 << 21;
const PREMUL: u32 = 1u;
const UNPREMUL: u32 = 2u;

fn unpack(px: u32) -> vec4<i32> {
  return vec4<i32>(vec4<u32>(px, px >> 8u, px >> 16u, px >> 24u) & vec4<u32>(255u));
}

fn pack(c: vec4<i32>) -> u32 {
  let u = vec4<u32>(c);
  return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}

// Pillow's MULDIV255 (rgbA → rgba): rounded v·a / 255.
fn premultiply(c: vec4<i32>) -> vec4<i32> {
  let t = c.xyz * c.w + vec3<i32>(128);
  return vec4<i32>(((t >> vec3<u32>(8u)) + t) >> vec3<u32>(8u), c.w);
}

// Pillow's rgba → rgbA: truncated 255·v / a, clamped; a = 0 and a = 255 are copied.
fn unpremultiply(c: vec4<i32>) -> vec4<i32> {
  if (c.w == 0 || c.w == 255) { return c; }
  return vec4<i32>(min(c.xyz * 255 / vec3<i32>(c.w), vec3<i32>(255)), c.w);
}

fn clip8(ss: vec4<i32>) -> vec4<i32> {
  return clamp(ss >> vec4<u32>(22u), vec4<i32>(0), vec4<i32>(255));
}

fn finish(ss: vec4<i32>) -> u32 {
  var o = clip8(ss);
  if ((p.flags & UNPREMUL) != 0u) { o = unpremultiply(o); }
  return pack(o);
}

fn read_px(i: u32) -> vec4<i32> {
  let c = unpack(src[i]);
  if ((p.flags & PREMUL) != 0u) { return premultiply(c); }
  return c;
}

// Horizontal pass: dst[y, x] (out_w × out_h) from source row y0 + y.
@compute @workgroup_size(64, 4)
fn resample_h(@builtin(global_invocation_id) g: vec3<u32>) {
  let x = g.x;
  let y = g.y;
  if (x >= p.out_w || y >= p.out_h) { return; }
  let n = p.out_w;
  let first = u32(taps[p.tap_off + x]);
  let count = u32(taps[p.tap_off + n + x]);
  let row = (p.y0 + y) * p.in_w + first;
  let w0 = p.tap_off + 2u * n + x;
  var ss = vec4<i32>(HALF);
  for (var i = 0u; i < count; i++) {
    ss += read_px(row + i) * taps[w0 + i * n];
  }
  dst[y * p.out_w + x] = finish(ss);
}

// Vertical pass: dst[y, x] (out_w × out_h) from source rows start[y] − y0 …; in_w = out_w.
@compute @workgroup_size(64, 4)
fn resample_v(@builtin(global_invocation_id) g: vec3<u32>) {
  let x = g.x;
  let y = g.y;
  if (x >= p.out_w || y >= p.out_h) { return; }
  let n = p.out_h;
  let first = u32(taps[p.tap_off + y]) - p.y0;
  let count = u32(taps[p.tap_off + n + y]);
  let w0 = p.tap_off + 2u * n + y;
  var ss = vec4<i32>(HALF);
  for (var i = 0u; i < count; i++) {
    ss += read_px((first + i) * p.in_w + x) * taps[w0 + i * n];
  }
  dst[y * p.out_w + x] = finish(ss);
}

// Pillow's alpha_composite of the pixel over opaque white, per colour channel (as resample.ts `overWhite`).
fn over_white(c: vec4<i32>) -> vec3<u32> {
  let a = u32(c.w);
  if (a == 0u) { return vec3<u32>(255u); }
  let outa255 = a * 255u + 255u * (255u - a);
  let coef1 = a * 255u * 255u * 128u / outa255;
  let coef2 = 255u * 128u - coef1;
  let t = vec3<u32>(c.xyz) * coef1 + vec3<u32>(255u * coef2 + (0x80u << 7u));
  return (((t >> vec3<u32>(8u)) + t) >> vec3<u32>(8u)) >> vec3<u32>(7u);
}

// One invocation per output pixel of tile t = tile0 + z (the t-th M×M tile of the source, row-major),
// written as frame frame0 + t.
@compute @workgroup_size(64, 4)
fn write_frames(@builtin(global_invocation_id) g: vec3<u32>) {
  let M = f.size;
  let q = g.x;
  let r = g.y;
  if (q >= M || r >= M) { return; }
  let t = f.tile0 + g.z;
  let x0 = (t % f.cols) * M;
  let y0 = (t / f.cols) * M;
  let c = unpack(src[(y0 + r) * f.src_w + x0 + q]);
  var rgb = vec3<u32>(c.xyz);
  if (f.composite != 0u) { rgb = over_white(c); }
  let plane = M * M;
  let o = f.out_off + (f.frame0 + t) * 3u * plane + r * M + q;
  outp[o] = lut[rgb.x];
  outp[o + plane] = lut[256u + rgb.y];
  outp[o + 2u * plane] = lut[512u + rgb.z];
}
