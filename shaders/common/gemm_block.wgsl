// The 4×4 register block of the CPU-adapter GEMM variants (matmul.wgsl and patch_embed.wgsl, main_register and
// main_register4): an invocation computes rows r0..r0+3 × columns c0..c0+3 straight from memory, with no
// workgroup memory and no barriers (which CPU adapters run by switching through every SIMD group). The block is
// a mat4x4 whose column i is row r0 + i, indexed by constants only: CPU adapters do not unroll loops and would
// keep a loop-indexed array in memory. The kernel walks K its own way (flat, or over patch pixels) and provides
//   fn tile_store(row: u32, col: u32, v: f32)    (bias, position rows, the store; gemm_tile.wgsl uses it too).

// Offsets (· stride) of rows r0..r0+3; rows past the last re-read it (in bounds; their results are not stored).
fn block_rows(r0: u32, rows: u32, stride: u32) -> vec4<u32> {
  return min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(rows - 1u)) * stride;
}

// One k: row i += a[i] · b, with a the 4 rows' values at k and b the 4 columns'.
fn block_fma(acc: ptr<function, mat4x4<f32>>, a: vec4<f32>, b: vec4<f32>) {
  (*acc)[0] = fma(vec4<f32>(a.x), b, (*acc)[0]);
  (*acc)[1] = fma(vec4<f32>(a.y), b, (*acc)[1]);
  (*acc)[2] = fma(vec4<f32>(a.z), b, (*acc)[2]);
  (*acc)[3] = fma(vec4<f32>(a.w), b, (*acc)[3]);
}

// Four k at once from vec4 slices along K (column i of a: row i's slice; column j of b: column j's):
// row i += (a_i · b_0, a_i · b_1, a_i · b_2, a_i · b_3).
fn block_dot(acc: ptr<function, mat4x4<f32>>, a: mat4x4<f32>, b: mat4x4<f32>) {
  (*acc)[0] += vec4<f32>(dot(a[0], b[0]), dot(a[0], b[1]), dot(a[0], b[2]), dot(a[0], b[3]));
  (*acc)[1] += vec4<f32>(dot(a[1], b[0]), dot(a[1], b[1]), dot(a[1], b[2]), dot(a[1], b[3]));
  (*acc)[2] += vec4<f32>(dot(a[2], b[0]), dot(a[2], b[1]), dot(a[2], b[2]), dot(a[2], b[3]));
  (*acc)[3] += vec4<f32>(dot(a[3], b[0]), dot(a[3], b[1]), dot(a[3], b[2]), dot(a[3], b[3]));
}

// Row r, columns c0..c0+3 of a block through tile_store, clipped to rows × cols.
fn block_store_row(r: u32, c0: u32, v: vec4<f32>, rows: u32, cols: u32) {
  if (r >= rows) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (c0 + j < cols) { tile_store(r, c0 + j, v[j]); }
  }
}

fn block_write(acc: mat4x4<f32>, r0: u32, c0: u32, rows: u32, cols: u32) {
  block_store_row(r0, c0, acc[0], rows, cols);
  block_store_row(r0 + 1u, c0, acc[1], rows, cols);
  block_store_row(r0 + 2u, c0, acc[2], rows, cols);
  block_store_row(r0 + 3u, c0, acc[3], rows, cols);
}
