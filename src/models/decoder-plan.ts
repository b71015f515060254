/**
 * The tensor plan and weight assembly of a Llama-style decoder (`LlamaModel` / `Qwen2Model` + `lm_head`), shared by
 * every family whose language model is one: per layer input_layernorm, q/k/v fused row-wise into one target (with
 * their biases when the model has them: Qwen2), o_proj, post_attention_layernorm, gate/up fused, down_proj; the final
 * norm; a tied head filled from the token table (a checkpoint that saved it anyway is tolerated) or its own.
 */
import type { PlanBuilder } from './plan.ts';
import type { LoadedTargets } from './plan-loader.ts';
import type { DecoderConfig, LlamaLayer, LlamaWeights } from './llama.ts';

/** What the plan needs of a decoder config. */
export type DecoderShape = Pick<DecoderConfig, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads' | 'headDim'> & {
  vocabSize: number;
};

export interface DecoderNames {
  /** Prefix of the decoder's tensors, e.g. 'model.text_model.' or 'language_model.model.'. */
  prefix: string;
  /** The head's prefix, e.g. 'lm_head' or 'language_model.lm_head'. */
  head: string;
  tied: boolean;
  /** q/k/v projections with biases (Qwen2). */
  qkvBias?: boolean;
}

export function planDecoder(b: PlanBuilder, t: DecoderShape, n: DecoderNames): void {
  const H = t.hiddenSize, nh = t.numAttentionHeads, nkv = t.numKeyValueHeads, hd = t.headDim, I = t.intermediateSize, TP = n.prefix;
  const embed = b.embedding(`${TP}embed_tokens.weight`, 'text', t.vocabSize, H);
  for (let l = 0; l < t.numHiddenLayers; l++) {
    const P = `${TP}layers.${l}.`;
    b.plain(`${P}input_layernorm.weight`, 'text', [H], 'norm');
    const qkv = b.linear(`${P}self_attn.qkv_proj.weight`, 'text', (nh + 2 * nkv) * hd, H, { bias: n.qkvBias ?? false });
    b.rows(qkv, `${P}self_attn.q_proj`, 0, [nh * hd, H]);
    b.rows(qkv, `${P}self_attn.k_proj`, nh * hd, [nkv * hd, H]);
    b.rows(qkv, `${P}self_attn.v_proj`, (nh + nkv) * hd, [nkv * hd, H]);
    b.layer(`${P}self_attn.o_proj`, 'text', H, nh * hd);
    b.plain(`${P}post_attention_layernorm.weight`, 'text', [H], 'norm');
    const gateUp = b.linear(`${P}mlp.gate_up_proj.weight`, 'text', 2 * I, H);
    b.rows(gateUp, `${P}mlp.gate_proj`, 0, [I, H]);
    b.rows(gateUp, `${P}mlp.up_proj`, I, [I, H]);
    b.layer(`${P}mlp.down_proj`, 'text', H, I);
  }
  b.plain(`${TP}norm.weight`, 'text', [H], 'norm');
  if (n.tied) b.tied(`${n.head}.weight`, embed, `${n.head}.weight`);
  else b.layer(n.head, 'text', t.vocabSize, H);
}

/** The decoder weights the model code reads, from the loaded targets of `planDecoder`. */
export function decoderWeights(w: LoadedTargets, layers: number, n: Pick<DecoderNames, 'prefix' | 'head'>): LlamaWeights {
  const TP = n.prefix;
  const text: LlamaWeights = { embed: w.embedding(`${TP}embed_tokens.weight`), layers: [], norm: w.buffer(`${TP}norm.weight`), lmHead: w.linear(`${n.head}.weight`) };
  for (let l = 0; l < layers; l++) {
    const P = `${TP}layers.${l}.`;
    const L: LlamaLayer = {
      inputNorm: w.buffer(`${P}input_layernorm.weight`), postNorm: w.buffer(`${P}post_attention_layernorm.weight`),
      qkv: w.linear(`${P}self_attn.qkv_proj.weight`), o: w.linear(`${P}self_attn.o_proj.weight`),
      gateUp: w.linear(`${P}mlp.gate_up_proj.weight`), down: w.linear(`${P}mlp.down_proj.weight`),
    };
    text.layers.push(L);
  }
  return text;
}
