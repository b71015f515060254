/**
 * Single-op ONNX models for peers (onnxruntime-web in benchmarks, onnxruntime-node in tests), built in Node
 * with `onnx-proto`. Node-only (protobufjs is CommonJS): browser code gets the bytes through
 * `BenchContext.asset`, and bench modules import this file dynamically inside their `assets()`.
 * Generic pieces (tensors, attributes, nodes, graphs) first; one builder per peer op after them.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TensorProtoInit = onnxProto.onnx.ITensorProto;
type NodeProtoInit = onnxProto.onnx.INodeProto;
type ValueInfoInit = onnxProto.onnx.IValueInfoProto;
type AttributeInit = onnxProto.onnx.IAttributeProto;

export type ElemType = 'float32' | 'float16' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';
/** A dimension: a number, or a name for a symbolic (dynamic) one. */
export type Dim = number | string;

const DT = onnx.TensorProto.DataType;
const ELEM: Record<ElemType, number> = {
  float32: DT.FLOAT, float16: DT.FLOAT16, uint8: DT.UINT8, int8: DT.INT8, int32: DT.INT32, int64: DT.INT64, bool: DT.BOOL,
};

/** Default opsets: ai.onnx 17 and the contrib ops of onnxruntime (com.microsoft 1). */
export const DEFAULT_OPSETS = [
  { domain: '', version: 17 },
  { domain: 'com.microsoft', version: 1 },
];

/** An initializer (constant tensor) from raw little-endian bytes. */
export function tensor(name: string, type: ElemType, dims: number[], data: ArrayBufferView): TensorProtoInit {
  const count = dims.reduce((a, b) => a * b, 1);
  const elemBytes = type === 'float32' || type === 'int32' ? 4 : type === 'int64' ? 8 : type === 'float16' ? 2 : 1;
  if (data.byteLength !== count * elemBytes) throw new Error(`tensor ${name}: ${data.byteLength} bytes for dims [${dims}] of ${type}`);
  return { name, dataType: ELEM[type], dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** A graph input/output declaration. */
export function valueInfo(name: string, type: ElemType, dims: Dim[]): ValueInfoInit {
  return {
    name,
    type: { tensorType: { elemType: ELEM[type], shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Attribute values, tagged so ints and floats are never confused. */
export type AttrValue = { int: number } | { float: number } | { ints: number[] } | { floats: number[] } | { string: string };
export const int = (v: number): AttrValue => ({ int: v });
export const float = (v: number): AttrValue => ({ float: v });
export const ints = (v: number[]): AttrValue => ({ ints: v });
export const floats = (v: number[]): AttrValue => ({ floats: v });
export const str = (v: string): AttrValue => ({ string: v });

function attribute(name: string, v: AttrValue): AttributeInit {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in v) return { name, type: T.INT, i: v.int };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.STRING, s: new TextEncoder().encode(v.string) };
}

/** One node. Absent optional inputs are '' (ONNX convention). */
export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, opts: { domain?: string; name?: string } = {}): NodeProtoInit {
  return {
    opType,
    domain: opts.domain ?? '',
    name: opts.name ?? `${opType}_0`,
    input: inputs,
    output: outputs,
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
  };
}

export interface GraphSpec {
  name?: string;
  nodes: NodeProtoInit[];
  inputs: ValueInfoInit[];
  outputs: ValueInfoInit[];
  initializers?: TensorProtoInit[];
  opsets?: Array<{ domain: string; version: number }>;
}

/** Serialises a model holding one graph. */
export function buildModel(g: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'webvlm-bench',
    opsetImport: g.opsets ?? DEFAULT_OPSETS,
    graph: {
      name: g.name ?? 'graph',
      node: g.nodes,
      input: g.inputs,
      output: g.outputs,
      initializer: g.initializers ?? [],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface MatMulNBitsSpec {
  N: number;
  K: number;
  /** Elements per quantization block (ORT `block_size`): a power of two ≥ 16. */
  blockSize: number;
  /** uint8 [N, ⌈K/blockSize⌉, blockSize/2], low nibble first (see `toMatMulNBits` in src/kernels/int4.ts). */
  B: Uint8Array;
  /** f32 [N, ⌈K/blockSize⌉]. */
  scales: Float32Array;
  /** Optional f32 [N] (input 5). */
  bias?: Float32Array;
  /** Rows of A: a number, or a name for a dynamic dimension (default 'M'). */
  M?: Dim;
}

/**
 * Y[M, N] = A[M, K] · dequant(B)ᵀ (+ bias) as one `com.microsoft.MatMulNBits` node (bits 4, zero point 8:
 * its default when no zero_points input is given). Input "A" f32, output "Y" f32; B and scales are initializers.
 */
export function buildMatMulNBitsModel(s: MatMulNBitsSpec): Uint8Array {
  const blocks = Math.ceil(s.K / s.blockSize);
  const M = s.M ?? 'M';
  const inits = [tensor('B', 'uint8', [s.N, blocks, s.blockSize / 2], s.B), tensor('scales', 'float32', [s.N, blocks], s.scales)];
  const inputs = ['A', 'B', 'scales'];
  if (s.bias) {
    inits.push(tensor('bias', 'float32', [s.N], s.bias));
    inputs.push('', '', 'bias'); // zero_points and g_idx absent
  }
  return buildModel({
    name: 'matmul_nbits',
    nodes: [node('MatMulNBits', inputs, ['Y'], { K: int(s.K), N: int(s.N), bits: int(4), block_size: int(s.blockSize) }, { domain: 'com.microsoft' })],
    inputs: [valueInfo('A', 'float32', [M, s.K])],
    outputs: [valueInfo('Y', 'float32', [M, s.N])],
    initializers: inits,
  });
}

export interface GroupQueryAttentionSpec {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** New tokens: a number, or a name for a dynamic dimension (default 'S'). */
  seqLen?: Dim;
  /** Add past_key / past_value inputs `[1, kvHeads, P, headDim]` (P dynamic): prefill after cached tokens, or decode. */
  withPast?: boolean;
  /** Also make present_key / present_value graph outputs (default: only "output"). */
  presentOutputs?: boolean;
  /** ORT `scale` attribute; omitted → its default headDim^-0.5. */
  scale?: number;
}

/**
 * One `com.microsoft.GroupQueryAttention` node, causal (its only mode), batch 1. Inputs "query" [1,S,heads·hd],
 * "key"/"value" [1,S,kvHeads·hd] (f32), optional "past_key"/"past_value" [1,kvHeads,P,hd], "seqlens_k" int32 [1]
 * = total − 1, "total_sequence_length" int32 scalar = P + S. Query head h uses KV head ⌊h/(heads/kvHeads)⌋;
 * new token i sits at position P + i.
 */
export function buildGroupQueryAttentionModel(s: GroupQueryAttentionSpec): Uint8Array {
  const S = s.seqLen ?? 'S';
  const kvw = s.kvHeads * s.headDim;
  const attrs: Record<string, AttrValue> = { num_heads: int(s.heads), kv_num_heads: int(s.kvHeads) };
  if (s.scale !== undefined) attrs.scale = float(s.scale);
  const past = s.withPast ? ['past_key', 'past_value'] : ['', ''];
  const inputs = [
    valueInfo('query', 'float32', [1, S, s.heads * s.headDim]),
    valueInfo('key', 'float32', [1, S, kvw]),
    valueInfo('value', 'float32', [1, S, kvw]),
  ];
  if (s.withPast) {
    inputs.push(valueInfo('past_key', 'float32', [1, s.kvHeads, 'P', s.headDim]), valueInfo('past_value', 'float32', [1, s.kvHeads, 'P', s.headDim]));
  }
  inputs.push(valueInfo('seqlens_k', 'int32', [1]), valueInfo('total_sequence_length', 'int32', []));
  const outputs = [valueInfo('output', 'float32', [1, S, s.heads * s.headDim])];
  if (s.presentOutputs) {
    outputs.push(valueInfo('present_key', 'float32', [1, s.kvHeads, 'T', s.headDim]), valueInfo('present_value', 'float32', [1, s.kvHeads, 'T', s.headDim]));
  }
  return buildModel({
    name: 'group_query_attention',
    nodes: [node('GroupQueryAttention', ['query', 'key', 'value', ...past, 'seqlens_k', 'total_sequence_length'], ['output', 'present_key', 'present_value'], attrs, { domain: 'com.microsoft' })],
    inputs,
    outputs,
  });
}
