// The workgroup tile of the tiled f32 GEMMs (matmul.wgsl and patch_embed.wgsl, entry point `main`): a 64×64
// output tile per workgroup of 16×16 invocations, 4×4 outputs each; K in steps of TK through workgroup memory.
// Per K step the kernel stages its operands (A: rows of the tile, B: columns) and calls tile_step:
//   for (var i = 0u; i < 4u; i++) {
//     let t = tile_row(li, i);                  // tile row / column this load fills, at k = k0 + li % TK
//     tile_put(li, i, a_value(row0 + t, k0 + li % TK), b_value(col0 + t, k0 + li % TK));  // 0 past the edges
//   }
//   tile_step(&acc, lid.xy);                     // from uniform control flow: it holds the barriers
// then tile_write(&acc, ...) hands every in-bounds output to the kernel's own
//   fn tile_store(row: u32, col: u32, v: f32)    (bias, position rows, the store).
// The staged tiles are k-major ([TK][TILE]) so an invocation's 4 rows (4 columns) at one k are adjacent.

const TILE = 64u;
const TK = 16u;
var<workgroup> As: array<f32, 1024>; // [TK][TILE]
var<workgroup> Bs: array<f32, 1024>; // [TK][TILE]

// Staging load i (of 4) of invocation li fills tile row (and column) li / TK + 16·i at k offset li % TK:
// consecutive invocations read consecutive k of one row (coalesced along K).
fn tile_row(li: u32, i: u32) -> u32 {
  return li / TK + i * 16u;
}

fn tile_put(li: u32, i: u32, av: f32, bv: f32) {
  let at = (li % TK) * TILE + tile_row(li, i);
  As[at] = av;
  Bs[at] = bv;
}

// Waits for the staged tiles, adds their K step to the invocation's 4×4 block (acc[4i + j]: row 4·tid.y + i,
// column 4·tid.x + j of the tile), and waits until every invocation is done reading them.
fn tile_step(acc: ptr<function, array<f32, 16>>, tid: vec2<u32>) {
  workgroupBarrier();
  for (var kk = 0u; kk < TK; kk++) {
    var ar: array<f32, 4>;
    var br: array<f32, 4>;
    for (var i = 0u; i < 4u; i++) {
      ar[i] = As[kk * TILE + tid.y * 4u + i];
      br[i] = Bs[kk * TILE + tid.x * 4u + i];
    }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) {
        (*acc)[i * 4u + j] = fma(ar[i], br[j], (*acc)[i * 4u + j]);
      }
    }
  }
  workgroupBarrier();
}

// Calls the kernel's tile_store(row, col, value) for each output of the block inside rows × cols.
fn tile_write(acc: ptr<function, array<f32, 16>>, row0: u32, col0: u32, tid: vec2<u32>, rows: u32, cols: u32) {
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + tid.y * 4u + i;
    if (r >= rows) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + tid.x * 4u + j;
      if (col < cols) { tile_store(r, col, (*acc)[i * 4u + j]); }
    }
  }
}
