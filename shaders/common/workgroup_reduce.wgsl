// Sum / max of one f32 per invocation over a 1-D workgroup; every invocation gets the result.
// Used by norm.wgsl, softmax.wgsl, sampling.wgsl. The including shader:
//   - declares `WG`, its workgroup size (a power of two, const or override);
//   - puts `lane: Lane` among the entry point's parameters (local index, + subgroup builtins when SUBGROUPS)
//     and has `enable subgroups;` at its top when SUBGROUPS;
//   - calls wg_sum / wg_max from uniform control flow (they contain barriers).
// SUBGROUPS: subgroupAdd/Max, then one partial per subgroup through workgroup memory. Subgroups of a 1-D
// workgroup are contiguous runs of local_invocation_index (as in gemv.wgsl), so li / sg_size numbers them;
// any size from 1 to WG works. Else a tree in workgroup memory (log2(WG) barriers).

struct Lane {
  @builtin(local_invocation_index) li: u32,
#if SUBGROUPS
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
#endif
}

var<workgroup> reduce_buf: array<f32, WG>;

const REDUCE_SUM = 0u;
const REDUCE_MAX = 1u;

fn reduce_combine(a: f32, b: f32, op: u32) -> f32 {
  return select(a + b, max(a, b), op == REDUCE_MAX);
}

fn wg_reduce(v: f32, op: u32, lane: Lane) -> f32 {
  workgroupBarrier(); // the previous call's readers are done with reduce_buf
#if SUBGROUPS
  var s: f32;
  if (op == REDUCE_MAX) { s = subgroupMax(v); } else { s = subgroupAdd(v); }
  if (lane.sg_lane == 0u) { reduce_buf[lane.li / lane.sg_size] = s; }
  workgroupBarrier();
  var t = reduce_buf[0];
  let nsg = (WG + lane.sg_size - 1u) / lane.sg_size;
  for (var i = 1u; i < nsg; i++) { t = reduce_combine(t, reduce_buf[i], op); }
  return t;
#else
  reduce_buf[lane.li] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lane.li < stride) { reduce_buf[lane.li] = reduce_combine(reduce_buf[lane.li], reduce_buf[lane.li + stride], op); }
    workgroupBarrier();
  }
  return reduce_buf[0];
#endif
}

fn wg_sum(v: f32, lane: Lane) -> f32 {
  return wg_reduce(v, REDUCE_SUM, lane);
}

fn wg_max(v: f32, lane: Lane) -> f32 {
  return wg_reduce(v, REDUCE_MAX, lane);
}
