/**
 * The shared WGSL chunks that `#include "name.wgsl"` resolves to (src/gpu/preprocess.ts): every file of
 * shaders/common/, by its file name. A new chunk is one import and one entry here (a test checks the folder
 * and this table agree).
 */
import gemmBlock from '../../shaders/common/gemm_block.wgsl?raw';
import gemmTile from '../../shaders/common/gemm_tile.wgsl?raw';
import mat4 from '../../shaders/common/mat4.wgsl?raw';
import onlineSoftmax from '../../shaders/common/online_softmax.wgsl?raw';
import workgroupReduce from '../../shaders/common/workgroup_reduce.wgsl?raw';
import type { Chunks } from './preprocess.ts';

export const SHADER_CHUNKS: Chunks = Object.freeze({
  'gemm_block.wgsl': gemmBlock,
  'gemm_tile.wgsl': gemmTile,
  'mat4.wgsl': mat4,
  'online_softmax.wgsl': onlineSoftmax,
  'workgroup_reduce.wgsl': workgroupReduce,
});
