// Token embedding gather: out[t, d] = table[ids[t], d] for T tokens, D columns, vocab V.
// Ids ≥ V give a row of zeros (a GPU cannot throw; the host validates ids it produced itself).
// Entry points by table storage (one invocation per output element, writes contiguous):
//   embed_f32:  table f32 [V, D]
//   embed_f16:  table f16 [V, D] packed in u32 words, element e = id·D + d is half e & 1 of word e >> 1
//               (read with unpack2x16float: no shader-f16 feature needed; rows may straddle words)
//   embed_int4: webvlm's int4 format (src/kernels/int4.ts) with N = V rows of K = D values:
//               value = (nibble − 8) · scale[row, d / group]

struct Params {
  T: u32,
  D: u32,
  V: u32,
  blocks: u32,        // int4: ⌈D/32⌉ 16-byte blocks per row
  scale_stride: u32,  // int4: scale words per row
  group: u32,         // int4: elements per scale
  scale_f16: u32,     // int4: scales are f16 pairs
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table_f32: array<f32>;
@group(0) @binding(1) var<storage, read> table_u32: array<u32>;
// f32/f16: out at 2, params at 3. int4: scales at 2, out at 3, params at 4.
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(4) var<uniform> p4: Params;

const WG = 256u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn embed_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat(gid, nwg);
  if (o >= p3.T * p3.D) { return; }
  let t = o / p3.D;
  let d = o - t * p3.D;
  let id = ids[t];
  var v = 0.0;
  if (id < p3.V) { v = table_f32[id * p3.D + d]; }
  out2[o] = v;
}

@compute @workgroup_size(WG)
fn embed_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat(gid, nwg);
  if (o >= p3.T * p3.D) { return; }
  let t = o / p3.D;
  let d = o - t * p3.D;
  let id = ids[t];
  var v = 0.0;
  if (id < p3.V) {
    let e = id * p3.D + d;
    let pair = unpack2x16float(table_u32[e >> 1u]);
    v = select(pair.x, pair.y, (e & 1u) == 1u);
  }
  out2[o] = v;
}

@compute @workgroup_size(WG)
fn embed_int4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat(gid, nwg);
  if (o >= p4.T * p4.D) { return; }
  let t = o / p4.D;
  let d = o - t * p4.D;
  let id = ids[t];
  var v = 0.0;
  if (id < p4.V) {
    let kk = d % 32u;
    let word = table_u32[(id * p4.blocks + d / 32u) * 4u + (kk & 3u)];
    let q = f32((word >> (4u * (kk >> 2u))) & 0xFu) - 8.0;
    let g = d / p4.group;
    var s: f32;
    if (p4.scale_f16 != 0u) {
      let pair = unpack2x16float(scales[id * p4.scale_stride + (g >> 1u)]);
      s = select(pair.x, pair.y, (g & 1u) == 1u);
    } else {
      s = bitcast<f32>(scales[id * p4.scale_stride + g]);
    }
    v = q * s;
  }
  out3[o] = v;
}
