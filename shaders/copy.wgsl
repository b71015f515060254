// Plain buffer copy dst[i] = src[i]: the bandwidth roofline that the memory-bound kernels (int4 GEMV) are
// measured against. 16-byte elements (vec4<u32>) unless SCALAR (byte counts not a multiple of 16).
// One element per invocation; the 1-D grid is split over x/y for large copies (see grid() in common.ts).
#if SCALAR
alias Elem = u32;
#else
alias Elem = vec4<u32>;
#endif

struct Params {
  count: u32,       // elements to copy
  src_offset: u32,  // in elements
  dst_offset: u32,  // in elements
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<Elem>;
@group(0) @binding(1) var<storage, read_write> dst: array<Elem>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.count) { return; }
  dst[p.dst_offset + i] = src[p.src_offset + i];
}
