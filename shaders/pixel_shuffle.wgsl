// Idefics3 connector pixel shuffle (space-to-depth), per frame:
//   out[f, I·(w/s) + J, (di·s + dj)·D + d] = x[f, (I·s + di)·w + J·s + dj, d]
// x: [frames, h·w, D] → out: [frames, (h/s)·(w/s), s²·D]. One invocation per output element, so writes
// are contiguous and reads are contiguous runs of D.

struct Params {
  n: u32,      // output elements
  D: u32,
  s: u32,
  h: u32,
  w: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= p.n) { return; }
  let ss = p.s * p.s;
  let ws = p.w / p.s;
  let tokens = (p.h / p.s) * ws;
  let d = o % p.D;
  let c = (o / p.D) % ss;         // di·s + dj
  let tok = o / (p.D * ss);       // f·tokens + t
  let f = tok / tokens;
  let t = tok % tokens;
  let row = (t / ws) * p.s + c / p.s;   // I·s + di
  let col = (t % ws) * p.s + c % p.s;   // J·s + dj
  y[o] = x[((f * p.h + row) * p.w + col) * p.D + d];
}
