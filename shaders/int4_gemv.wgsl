// int4 GEMV for decode: Y[m, n] = Σ_k X[m, k] · dequant(W)[n, k] (+ bias[n]) for M ≤ 4 activation rows.
// Weight format (src/kernels/int4.ts): row n, block b of 32 elements = one vec4<u32> at n·blocks + b;
// word j's nibble i is element 32b + 4i + j, stored as q + 8. So ((wq >> 4i) & 0xF) − 8 is the vec4 of
// elements 32b+4i .. +3, dotted with the matching vec4 of X. Each block's integer dot is scaled once.
// f32 accumulation throughout. Entry points (picked per adapter, src/gpu/variants.ts):
//   main_row:       one output row per invocation, a straight loop over K (CPU adapters).
//   main_workgroup: ROWS rows per workgroup, LANES lanes per row striding over the blocks with 16-byte
//                   loads (a row's lanes read LANES·16 contiguous bytes); X staged in workgroup memory in
//                   chunks shared by all ROWS rows; lane partials reduced with subgroup shuffles when
//                   SUBGROUPS, else through workgroup memory.
#if SUBGROUPS
enable subgroups;
#endif

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
  blocks: u32,        // ⌈K/32⌉
  scale_stride: u32,  // scale words per row
  chunk_blocks: u32,  // blocks of X per staged chunk (main_workgroup): XS_VEC4 / (8·M)
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Blocks (of 32) per scale group: 1, 2 or 4 (group 32, 64, 128).
override BLOCKS_PER_GROUP: u32 = 1u;
// Scales stored as f16 pairs (true) or f32 bit patterns (false).
override SCALE_F16: bool = false;
override ROWS: u32 = 16u;
override LANES: u32 = 16u;

const MAX_M = 4u;

fn scale_of(n: u32, b: u32) -> f32 {
  let g = b / BLOCKS_PER_GROUP;
  if (SCALE_F16) {
    let pair = unpack2x16float(scales[n * p.scale_stride + (g >> 1u)]);
    return select(pair.x, pair.y, (g & 1u) == 1u);
  }
  return bitcast<f32>(scales[n * p.scale_stride + g]);
}

// The 4 weights 32b+4i .. +3 of a block as q values (−8..7).
fn nibbles(w: vec4<u32>, i: u32) -> vec4<f32> {
  return vec4<f32>((w >> vec4<u32>(4u * i)) & vec4<u32>(0xFu)) - vec4<f32>(8.0);
}

// X[m, k..k+3] with zeros past K (X rows are K long; the padded weight tail is q = 0 but X must not be NaN).
fn x4(m: u32, k: u32) -> vec4<f32> {
  let base = m * p.K;
  if (k + 3u < p.K) { return vec4<f32>(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]); }
  var v = vec4<f32>(0.0);
  for (var t = 0u; t < 4u; t++) {
    if (k + t < p.K) { v[t] = x[base + k + t]; }
  }
  return v;
}

fn finish(m: u32, n: u32, v: f32) {
  var r = v;
  if (p.has_bias != 0u) { r += bias[n]; }
  y[m * p.N + n] = r;
}

@compute @workgroup_size(64)
fn main_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.N) { return; }
  var acc: array<f32, MAX_M>;
  let row = n * p.blocks;
  // Blocks wholly inside K read X without bounds checks; the ragged tail block (if any) after them.
  let full = p.K / 32u;
  for (var b = 0u; b < full; b++) {
    let w = wq[row + b];
    var d = array<f32, MAX_M>(); // explicit: some compilers zero a declaration-only var once per function, not per iteration
    for (var i = 0u; i < 8u; i++) {
      let q = nibbles(w, i);
      for (var m = 0u; m < p.M; m++) {
        let o = m * p.K + b * 32u + 4u * i;
        d[m] += dot(q, vec4<f32>(x[o], x[o + 1u], x[o + 2u], x[o + 3u]));
      }
    }
    let s = scale_of(n, b);
    for (var m = 0u; m < p.M; m++) { acc[m] = fma(s, d[m], acc[m]); }
  }
  if (full < p.blocks) {
    let w = wq[row + full];
    var d = array<f32, MAX_M>();
    for (var i = 0u; i < 8u; i++) {
      let q = nibbles(w, i);
      for (var m = 0u; m < p.M; m++) { d[m] += dot(q, x4(m, full * 32u + 4u * i)); }
    }
    let s = scale_of(n, full);
    for (var m = 0u; m < p.M; m++) { acc[m] = fma(s, d[m], acc[m]); }
  }
  for (var m = 0u; m < p.M; m++) { finish(m, n, acc[m]); }
}

// Staged X: up to 768 vec4 (12 KiB) = 3072 values, split over the M rows: chunk_blocks = 96 / M blocks
// (one chunk for M = 1 up to K = 3072). With `red` that is 16 KiB, the WebGPU default limit.
const XS_VEC4 = 768u;
var<workgroup> xs: array<vec4<f32>, XS_VEC4>;
// Per-lane partials for the reduction: [MAX_M][ROWS·LANES ≤ 256].
var<workgroup> red: array<f32, 1024>;

@compute @workgroup_size(ROWS * LANES)
fn main_workgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32
#if SUBGROUPS
                  , @builtin(subgroup_size) sg_size: u32
#endif
                  ) {
  let wg_size = ROWS * LANES;
  let row_in_wg = li / LANES;
  let lane = li % LANES;
  let n = (wg.x + wg.y * nwg.x) * ROWS + row_in_wg;
  let cb = p.chunk_blocks;
  let chunk_vec4 = cb * 8u;
  var acc: array<f32, MAX_M>;
  for (var b0 = 0u; b0 < p.blocks; b0 += cb) {
    // Stage X[m, 32·b0 .. 32·(b0+cb)) for every m (zeros past K).
    for (var v = li; v < p.M * chunk_vec4; v += wg_size) {
      let m = v / chunk_vec4;
      xs[v] = x4(m, b0 * 32u + (v % chunk_vec4) * 4u);
    }
    workgroupBarrier();
    if (n < p.N) {
      let bend = min(b0 + cb, p.blocks);
      for (var b = b0 + lane; b < bend; b += LANES) {
        let w = wq[n * p.blocks + b];
        let s = scale_of(n, b);
        let xoff = (b - b0) * 8u;
        var d = array<f32, MAX_M>(); // explicit: some compilers zero a declaration-only var once per function, not per iteration
        for (var i = 0u; i < 8u; i++) {
          let q = nibbles(w, i);
          for (var m = 0u; m < p.M; m++) { d[m] += dot(q, xs[m * chunk_vec4 + xoff + i]); }
        }
        for (var m = 0u; m < p.M; m++) { acc[m] = fma(s, d[m], acc[m]); }
      }
    }
    workgroupBarrier();
  }
#if SUBGROUPS
  // Subgroups are runs of consecutive local_invocation_index; LANES and the subgroup size are powers of
  // two, so a butterfly over offsets < min(LANES, sg_size) sums each row's lanes within one subgroup
  // (every lane ends with its subgroup's part of the row sum); rows wider than a subgroup add their
  // parts through workgroup memory.
  let width = min(LANES, sg_size);
  for (var m = 0u; m < p.M; m++) {
    for (var off = width >> 1u; off > 0u; off >>= 1u) {
      acc[m] += subgroupShuffleXor(acc[m], off);
    }
  }
  // One partial per subgroup part of a row (one part when the row fits in a subgroup).
  let parts = LANES / width;
  if (lane % width == 0u) {
    for (var m = 0u; m < p.M; m++) { red[m * 256u + row_in_wg * LANES + lane / width] = acc[m]; }
  }
  workgroupBarrier();
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) {
      var s = 0.0;
      for (var t = 0u; t < parts; t++) { s += red[m * 256u + row_in_wg * LANES + t]; }
      finish(m, n, s);
    }
  }
#else
  for (var m = 0u; m < p.M; m++) { red[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      for (var m = 0u; m < p.M; m++) { red[m * 256u + li] += red[m * 256u + li + stride]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) { finish(m, n, red[m * 256u + li]); }
  }
#endif
}
