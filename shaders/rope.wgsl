// Llama rotary position embedding (HF `apply_rotary_pos_emb`, rotate_half convention), in place on
// q[s, h·hd + i] (heads) and k[s, h·hd + i] (kv heads); rows may be strided (fused QKV buffers).
// For i < hd/2 the pair (x1, x2) = (x[i], x[i + hd/2]) becomes
//   (x1·cos − x2·sin, x2·cos + x1·sin),  angle = f32(inv_freq[i] · f32(startPos + s)).
// inv_freq comes from the host, computed as HF does in f32 (1 / θ^(2i/hd)); the product is one f32
// rounding, as HF's float32 matmul. cos/sin of that f32 angle are computed here (sincos below) to ~1e-7
// absolute for |angle| < 1e5, instead of the builtins, whose accuracy WGSL only bounds on [−π, π] (2⁻¹¹).
// One invocation per rotated pair; both tensors in one dispatch (invocations past the q pairs do k).

struct Params {
  S: u32,
  heads: u32,
  kv_heads: u32,
  half: u32,       // hd / 2
  q_stride: u32,   // elements between rows of q
  k_stride: u32,
  q_off: u32,      // element offset of q[0, 0]
  k_off: u32,
  start_pos: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
  inv_freq: array<vec4<f32>, 32>, // hd/2 ≤ 128 values
}

// SHARED: q and k live in one buffer (a fused QKV output, or q alone), bound once: WebGPU rejects two
// writable bindings of overlapping ranges, so k is addressed through q with its own offset.
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
#if SHARED
@group(0) @binding(1) var<uniform> p: Params;
#else
@group(0) @binding(1) var<storage, read_write> k: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

fn rotate_pair(is_q: bool, j: u32, half: u32, sc: vec2<f32>) {
#if SHARED
  let x1 = q[j];
  let x2 = q[j + half];
  q[j] = x1 * sc.y - x2 * sc.x;
  q[j + half] = x2 * sc.y + x1 * sc.x;
#else
  if (is_q) {
    let x1 = q[j];
    let x2 = q[j + half];
    q[j] = x1 * sc.y - x2 * sc.x;
    q[j + half] = x2 * sc.y + x1 * sc.x;
  } else {
    let x1 = k[j];
    let x2 = k[j + half];
    k[j] = x1 * sc.y - x2 * sc.x;
    k[j + half] = x2 * sc.y + x1 * sc.x;
  }
#endif
}

const WG = 256u;

// sin and cos of a (radians): a = n·π/2 + r with |r| ≤ π/4 (Cody–Waite: π/2 split in three parts whose
// products with n are exact or nearly so), then minimax polynomials on [−π/4, π/4] (Cephes sinf/cosf).
fn sincos(a: f32) -> vec2<f32> {
  let n = round(a * 0.63661977236758134);
  var r = a - n * 1.5703125;
  r = r - n * 4.837512969970703125e-4;
  r = r - n * 7.54978995489188216e-8;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = i32(n) & 3;
  // Quadrant q: sin(a) = (s, c, −s, −c)[q], cos(a) = (c, −s, −c, s)[q].
  var out = vec2<f32>(s, c);
  if (q == 1) { out = vec2<f32>(c, -s); }
  if (q == 2) { out = vec2<f32>(-s, -c); }
  if (q == 3) { out = vec2<f32>(-c, s); }
  return out;
}

fn rotate(i: u32, s: u32) -> vec2<f32> {
  let f = p.inv_freq[i / 4u][i % 4u];
  return sincos(f * f32(p.start_pos + s));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * WG;
  let heads_all = p.heads + p.kv_heads;
  if (g >= p.S * heads_all * p.half) { return; }
  let i = g % p.half;
  let hs = g / p.half;
  let h = hs % heads_all;
  let s = hs / heads_all;
  let sc = rotate(i, s);
  let hd = 2u * p.half;
  if (h < p.heads) {
    rotate_pair(true, p.q_off + s * p.q_stride + h * hd + i, p.half, sc);
  } else {
    rotate_pair(false, p.k_off + s * p.k_stride + (h - p.heads) * hd + i, p.half, sc);
  }
}
