/**
 * The Hugging Face tensor names and shapes of a `LlamaForCausalLM` checkpoint (and of Mistral's
 * and Qwen2's, which share the names), and the module paths LoRA attaches to. Shapes are as stored
 * by PyTorch: a linear weight is [out, in], its bias (where the family has one) [out].
 */
import type { LlamaConfig } from './llama-config.js';

/** The seven linear modules of a decoder layer, by their Hugging Face names. */
export const LLAMA_ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const LLAMA_MLP_MODULES = ['gate_proj', 'up_proj', 'down_proj'] as const;
export type LlamaLinearName = (typeof LLAMA_ATTENTION_MODULES)[number] | (typeof LLAMA_MLP_MODULES)[number];
export const LLAMA_LINEAR_MODULES: readonly LlamaLinearName[] = [...LLAMA_ATTENTION_MODULES, ...LLAMA_MLP_MODULES];

/** Module path of a linear layer, e.g. `model.layers.3.self_attn.q_proj` (the key PEFT uses). */
export function llamaModulePath(layer: number, name: LlamaLinearName): string {
  const block = (LLAMA_ATTENTION_MODULES as readonly string[]).includes(name) ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${block}.${name}`;
}

/** [out, in] of a linear layer of the config. */
export function llamaLinearShape(c: LlamaConfig, name: LlamaLinearName): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (name) {
    case 'q_proj': return [q, c.hiddenSize];
    case 'k_proj': return [kv, c.hiddenSize];
    case 'v_proj': return [kv, c.hiddenSize];
    case 'o_proj': return [c.hiddenSize, q];
    case 'gate_proj': return [c.intermediateSize, c.hiddenSize];
    case 'up_proj': return [c.intermediateSize, c.hiddenSize];
    case 'down_proj': return [c.hiddenSize, c.intermediateSize];
    default: {
      const never: never = name;
      throw new Error(`unknown module ${String(never)}`);
    }
  }
}

/** Whether the config's family puts a bias on this linear module (`<path>.bias`). */
export function llamaLinearHasBias(c: LlamaConfig, name: LlamaLinearName): boolean {
  switch (name) {
    case 'q_proj':
    case 'k_proj':
    case 'v_proj': return c.qkvBias;
    case 'o_proj': return c.oBias;
    case 'gate_proj':
    case 'up_proj':
    case 'down_proj': return c.mlpBias;
    default: {
      const never: never = name;
      throw new Error(`unknown module ${String(never)}`);
    }
  }
}

export const EMBED_TOKENS = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';
export const inputNormName = (layer: number): string => `model.layers.${layer}.input_layernorm.weight`;
export const postAttentionNormName = (layer: number): string => `model.layers.${layer}.post_attention_layernorm.weight`;

/** Every tensor a checkpoint of this config holds, with its stored shape, in a stable order. */
export function llamaTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  shapes.set(EMBED_TOKENS, [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    shapes.set(inputNormName(i), [c.hiddenSize]);
    for (const name of LLAMA_LINEAR_MODULES) {
      const shape = llamaLinearShape(c, name);
      shapes.set(`${llamaModulePath(i, name)}.weight`, shape);
      if (llamaLinearHasBias(c, name)) shapes.set(`${llamaModulePath(i, name)}.bias`, [shape[0]]);
    }
    shapes.set(postAttentionNormName(i), [c.hiddenSize]);
  }
  shapes.set(FINAL_NORM, [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set(LM_HEAD, [c.vocabSize, c.hiddenSize]);
  return shapes;
}
