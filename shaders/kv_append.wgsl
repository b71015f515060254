// Appends n new K and V rows to the KV cache: cache[h, pos + t, :] = src[t, h·hd : (h+1)·hd].
// Sources are rows of the k/v projections (row stride src_row, so a fused QKV output works in place);
// the cache is [kvHeads, capacity, hd] (src/kernels/kv_cache.ts). One vec4 per invocation, K and V both.
// (Applying RoPE to K on the way in is a planned fusion.)

struct Params {
  n: u32,          // new rows
  kv_heads: u32,
  pos: u32,        // first cache position written
  capacity: u32,
  src_row: u32,    // vec4 stride between source rows
  k_off: u32,      // vec4 offsets into the sources
  v_off: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> k_src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> v_src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

override HD4: u32 = 16u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.n * p.kv_heads * HD4) { return; }
  let d = idx % HD4;
  let h = (idx / HD4) % p.kv_heads;
  let t = idx / (HD4 * p.kv_heads);
  let src = t * p.src_row + h * HD4 + d;
  let dst = (h * p.capacity + p.pos + t) * HD4 + d;
  k_cache[dst] = k_src[p.k_off + src];
  v_cache[dst] = v_src[p.v_off + src];
}
