/**
 * Puts an Idefics3 checkpoint's tensors on the GPU as they stream in (one tensor in JS memory at a time).
 * Linear weights are quantized to int4 on load (or kept f32); q/k/v and gate/up are fused row-wise by
 * writing each part at its row offset of one preallocated buffer, so nothing waits for its partners.
 * What stays f32 and why: norms, biases and position embeddings (tiny, and precision-critical);
 * the patch embedding (the first layer; 0.6 M params). embed_tokens is an f16 table in int4 mode (SmolVLM's
 * bf16 values convert to f16 without loss unless below 6e-8 or above 65504; half of f32's bytes, and only
 * gathered rows are read), f32 in f32 mode. A tied lm_head is quantized from the same tensor.
 */
import { WebVLMError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import type { Arena } from '../../gpu/buffers.ts';
import { int4Layout, quantizeInt4 } from '../../kernels/int4.ts';
import { f32ToF16 } from '../../kernels/dtype.ts';
import type { Linear } from '../layers.ts';
import type { Idefics3Config } from './config.ts';
import type { SiglipLayer, SiglipWeights, LayerNormWeights } from '../siglip.ts';
import type { LlamaLayer, LlamaWeights } from '../llama.ts';

export interface Idefics3Weights {
  vision: SiglipWeights;
  connector: Linear;
  text: LlamaWeights;
}

export type WeightFormat = 'int4' | 'f32';

interface Slot {
  /** embed_tokens: the token table (and a tied lm_head). */
  embed?: boolean;
  /** The fused linear this tensor belongs to, and its first row there. */
  linear?: { lin: Linear; row0: number; bias: boolean; quantize: boolean };
  /** Or a plain f32 buffer it fills whole. */
  set?: (b: GPUBuffer) => void;
  shape: number[];
}

const V = 'model.vision_model.';
const T = 'model.text_model.';

export class Idefics3WeightLoader {
  private readonly slots = new Map<string, Slot>();
  private readonly seen = new Set<string>();
  readonly weights: Idefics3Weights;

  constructor(private readonly gpu: GpuContext, private readonly arena: Arena, private readonly cfg: Idefics3Config, private readonly format: WeightFormat) {
    const v = cfg.vision, t = cfg.text;
    const D = v.hiddenSize, H = t.hiddenSize, p = v.patchSize;
    const vision: SiglipWeights = { patch: this.linear(D, 3 * p * p, true, false), position: null!, layers: [], post: this.ln() };
    this.plain(`${V}embeddings.position_embedding.weight`, [v.numPatches, D], (b) => (vision.position = b));
    this.rows(`${V}embeddings.patch_embedding`, vision.patch, 0, [D, 3, p, p], true, false);
    this.norm(`${V}post_layernorm`, vision.post, D);
    for (let i = 0; i < v.numHiddenLayers; i++) {
      const P = `${V}encoder.layers.${i}.`;
      const L: SiglipLayer = { ln1: this.ln(), qkv: this.linear(3 * D, D, true), out: this.linear(D, D, true), ln2: this.ln(), fc1: this.linear(v.intermediateSize, D, true), fc2: this.linear(D, v.intermediateSize, true) };
      this.norm(`${P}layer_norm1`, L.ln1, D);
      this.norm(`${P}layer_norm2`, L.ln2, D);
      ['q', 'k', 'v'].forEach((x, j) => this.rows(`${P}self_attn.${x}_proj`, L.qkv, j * D, [D, D], true));
      this.rows(`${P}self_attn.out_proj`, L.out, 0, [D, D], true);
      this.rows(`${P}mlp.fc1`, L.fc1, 0, [v.intermediateSize, D], true);
      this.rows(`${P}mlp.fc2`, L.fc2, 0, [D, v.intermediateSize], true);
      vision.layers.push(L);
    }
    const connector = this.linear(H, cfg.connectorInputSize, false);
    this.rows('model.connector.modality_projection.proj', connector, 0, [H, cfg.connectorInputSize], false);

    const nh = t.numAttentionHeads, nkv = t.numKeyValueHeads, hd = t.headDim, I = t.intermediateSize;
    // A tied lm_head in f32 mode shares the embedding buffer (filled in putEmbedding); otherwise it has its own.
    const sharedHead = cfg.tieWordEmbeddings && format === 'f32';
    const text: LlamaWeights = { embed: null!, layers: [], norm: null!, lmHead: sharedHead ? { N: t.vocabSize, K: H } : this.linear(t.vocabSize, H, false) };
    this.slots.set(`${T}embed_tokens.weight`, { shape: [t.vocabSize, H], embed: true });
    this.plain(`${T}norm.weight`, [H], (b) => (text.norm = b));
    if (!cfg.tieWordEmbeddings) this.rows('lm_head', text.lmHead, 0, [t.vocabSize, H], false);
    for (let i = 0; i < t.numHiddenLayers; i++) {
      const P = `${T}layers.${i}.`;
      const L: LlamaLayer = {
        inputNorm: null!, postNorm: null!,
        qkv: this.linear((nh + 2 * nkv) * hd, H, false), o: this.linear(H, nh * hd, false),
        gateUp: this.linear(2 * I, H, false), down: this.linear(H, I, false),
      };
      this.plain(`${P}input_layernorm.weight`, [H], (b) => (L.inputNorm = b));
      this.plain(`${P}post_attention_layernorm.weight`, [H], (b) => (L.postNorm = b));
      this.rows(`${P}self_attn.q_proj`, L.qkv, 0, [nh * hd, H], false);
      this.rows(`${P}self_attn.k_proj`, L.qkv, nh * hd, [nkv * hd, H], false);
      this.rows(`${P}self_attn.v_proj`, L.qkv, (nh + nkv) * hd, [nkv * hd, H], false);
      this.rows(`${P}self_attn.o_proj`, L.o, 0, [H, nh * hd], false);
      this.rows(`${P}mlp.gate_proj`, L.gateUp, 0, [I, H], false);
      this.rows(`${P}mlp.up_proj`, L.gateUp, I, [I, H], false);
      this.rows(`${P}mlp.down_proj`, L.down, 0, [H, I], false);
      text.layers.push(L);
    }
    this.weights = { vision, connector, text };
  }

  /** Names the checkpoint must provide. */
  get expected(): string[] {
    return [...this.slots.keys()];
  }

  /** Takes one tensor (f32 values). Unknown names are an error: the checkpoint is not what config.json says. */
  put(name: string, shape: number[], values: Float32Array): void {
    const slot = this.slots.get(name);
    if (!slot) throw new WebVLMError('CorruptCheckpoint', `Unexpected tensor ${name} for this config.`);
    if (this.seen.has(name)) throw new WebVLMError('CorruptCheckpoint', `Tensor ${name} appears twice.`);
    if (shape.length !== slot.shape.length || shape.some((d, i) => d !== slot.shape[i])) {
      throw new WebVLMError('CorruptCheckpoint', `Tensor ${name} has shape [${shape}], config.json implies [${slot.shape}].`);
    }
    this.seen.add(name);
    if (slot.embed) return this.putEmbedding(values);
    if (slot.set) {
      const b = this.arena.buffer(values.byteLength, undefined, name);
      this.gpu.device.queue.writeBuffer(b, 0, values.buffer, values.byteOffset, values.byteLength);
      slot.set(b);
      return;
    }
    const { lin, row0, bias, quantize } = slot.linear!;
    if (bias) {
      this.gpu.device.queue.writeBuffer(lin.bias!, row0 * 4, values.buffer, values.byteOffset, values.byteLength);
      return;
    }
    const rows = shape[0];
    const K = values.length / rows;
    if (lin.int4 && quantize) {
      const q = quantizeInt4(values, rows, K, { group: lin.int4.group, scaleType: lin.int4.scaleType });
      const l = int4Layout(lin.int4);
      this.gpu.device.queue.writeBuffer(lin.int4.packed as GPUBuffer, row0 * l.blocks * 16, q.packed.buffer, q.packed.byteOffset, q.packed.byteLength);
      this.gpu.device.queue.writeBuffer(lin.int4.scales as GPUBuffer, row0 * l.scaleStride * 4, q.scales.buffer, q.scales.byteOffset, q.scales.byteLength);
    } else {
      this.gpu.device.queue.writeBuffer(lin.f32!, row0 * K * 4, values.buffer, values.byteOffset, values.byteLength);
    }
  }

  /** After the last tensor: every expected tensor must have arrived. */
  finish(): Idefics3Weights {
    const missing = this.expected.filter((n) => !this.seen.has(n));
    if (missing.length) {
      throw new WebVLMError('CorruptCheckpoint', `The checkpoint lacks ${missing.length} tensor(s) config.json implies, e.g. ${missing.slice(0, 3).join(', ')}.`);
    }
    return this.weights;
  }

  private putEmbedding(values: Float32Array): void {
    const { vocabSize: V, hiddenSize: D } = this.cfg.text;
    const text = this.weights.text;
    if (this.format === 'int4') {
      const bits = f32ToF16(values);
      const data = this.arena.buffer(bits.byteLength, undefined, 'embed_tokens/f16');
      this.gpu.device.queue.writeBuffer(data, 0, bits.buffer, bits.byteOffset, bits.byteLength);
      text.embed = { dtype: 'f16', data, V, D };
    } else {
      const data = this.arena.buffer(values.byteLength, undefined, 'embed_tokens/f32');
      this.gpu.device.queue.writeBuffer(data, 0, values.buffer, values.byteOffset, values.byteLength);
      text.embed = { dtype: 'f32', data, V, D };
      if (this.cfg.tieWordEmbeddings) text.lmHead.f32 = data;
    }
    if (this.cfg.tieWordEmbeddings && this.format === 'int4') {
      this.slots.set('lm_head.weight', { linear: { lin: text.lmHead, row0: 0, bias: false, quantize: true }, shape: [V, D] });
      this.put('lm_head.weight', [V, D], values);
    }
  }

  private ln(): LayerNormWeights {
    return { weight: null!, bias: null! };
  }

  private linear(N: number, K: number, bias: boolean, quantize = true): Linear {
    const lin: Linear = { N, K };
    if (this.format === 'int4' && quantize) {
      const shape = { N, K, group: 32 as const, scaleType: 'f16' as const };
      const l = int4Layout(shape);
      lin.int4 = { ...shape, packed: this.arena.buffer(l.packedWords * 4, undefined, 'int4/packed'), scales: this.arena.buffer(l.scaleWords * 4, undefined, 'int4/scales') };
    } else {
      lin.f32 = this.arena.buffer(N * K * 4, undefined, 'f32/weight');
    }
    if (bias) lin.bias = this.arena.buffer(N * 4, undefined, 'bias');
    return lin;
  }

  private rows(prefix: string, lin: Linear, row0: number, shape: number[], hasBias: boolean, quantize = true): void {
    this.slots.set(`${prefix}.weight`, { linear: { lin, row0, bias: false, quantize }, shape });
    if (hasBias) this.slots.set(`${prefix}.bias`, { linear: { lin, row0, bias: true, quantize }, shape: [shape[0]] });
  }

  private plain(name: string, shape: number[], set: (b: GPUBuffer) => void): void {
    this.slots.set(name, { set, shape });
  }

  private norm(prefix: string, target: LayerNormWeights, D: number): void {
    this.plain(`${prefix}.weight`, [D], (b) => (target.weight = b));
    this.plain(`${prefix}.bias`, [D], (b) => (target.bias = b));
  }
}
