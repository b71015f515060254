// mat4x4 helpers for register tiles of 4 vectors (one per matrix column); used by the attention kernels.

/** v ⊗ p: column i = v · p[i]. */
fn outer(v: vec4<f32>, p: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(v * p.x, v * p.y, v * p.z, v * p.w);
}

/** Column i of m scaled by a[i]. */
fn scale_cols(m: mat4x4<f32>, a: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(m[0] * a.x, m[1] * a.y, m[2] * a.z, m[3] * a.w);
}
