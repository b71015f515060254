// Start-up probe for adapters that do not say what they are (empty adapter.info); see
// src/gpu/variants.ts (probeSoftwareAdapter). Two kernels with the same arithmetic per invocation, one
// with a workgroupBarrier per step: GPUs run a barrier in a few cycles, so both take microseconds;
// CPU adapters (SwiftShader, llvmpipe) run a 256-invocation workgroup's barrier by switching through all
// its SIMD groups, so `barriers` costs milliseconds more than `plain`. That gap is exactly what decides
// between workgroup-cooperative and one-row-per-invocation kernels.

struct Params {
  iters: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

const WG = 256u;
var<workgroup> t: array<f32, WG>;

@compute @workgroup_size(WG)
fn barriers(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  var v = f32(gid.x) * 1e-7;
  for (var i = 0u; i < p.iters; i++) {
    t[li] = v;
    workgroupBarrier();
    v = fma(v, 0.5, t[(li + 1u) % WG]);
    workgroupBarrier();
  }
  out[gid.x] = v;
}

@compute @workgroup_size(WG)
fn plain(@builtin(global_invocation_id) gid: vec3<u32>) {
  var v = f32(gid.x) * 1e-7;
  for (var i = 0u; i < p.iters; i++) {
    v = fma(v, 0.5, v * 0.25 + 1e-7);
  }
  out[gid.x] = v;
}
