import { describe, expect, it } from 'vitest';
import { llamaConfigToJson, llamaParameterCount, parseLlamaConfig } from '../../client/models/llama-config.js';
import { isFedloraError } from '../../shared/errors.js';
import { tinyConfigJson } from './llama-tiny-config.js';

/** SmolLM-135M's config.json (HuggingFaceTB/SmolLM-135M), as published. */
const smolLm135m = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 0,
  hidden_act: 'silu', hidden_size: 576, initializer_range: 0.02, intermediate_size: 1536, max_position_embeddings: 2048,
  model_type: 'llama', num_attention_heads: 9, num_hidden_layers: 30, num_key_value_heads: 3, pretraining_tp: 1,
  rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0, tie_word_embeddings: true, torch_dtype: 'float32',
  transformers_version: '4.40.1', use_cache: true, vocab_size: 49152,
};

function refusal(json: object): string {
  try {
    parseLlamaConfig(json, 'dir/config.json');
  } catch (e) {
    if (isFedloraError(e, 'FL_ERR_MODEL_CONFIG')) return e.message;
    throw e;
  }
  throw new Error('expected FL_ERR_MODEL_CONFIG');
}

describe('llama config.json', () => {
  it('reads SmolLM-135M and counts its 134.5M parameters', () => {
    const c = parseLlamaConfig(smolLm135m);
    expect(c).toMatchObject({ hiddenSize: 576, numHeads: 9, numKvHeads: 3, headDim: 64, tieWordEmbeddings: true, rmsNormEps: 1e-5, bosTokenId: 0, eosTokenId: 0 });
    // The published figure for SmolLM-135M is 134,515,008 parameters (tied embeddings counted once).
    expect(llamaParameterCount(c)).toBe(134_515_008);
  });

  it("applies transformers' defaults and honours head_dim and rope_parameters", () => {
    const { num_key_value_heads: _kv, rms_norm_eps: _e, rope_theta: _t, max_position_embeddings: _m, tie_word_embeddings: _w, ...bare } = tinyConfigJson;
    const c = parseLlamaConfig(bare);
    expect(c).toMatchObject({ numKvHeads: 4, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 2048, tieWordEmbeddings: false, headDim: 4 });
    expect(parseLlamaConfig({ ...tinyConfigJson, head_dim: 8 }).headDim).toBe(8);
    expect(parseLlamaConfig({ ...tinyConfigJson, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }).ropeTheta).toBe(5e5);
    expect(parseLlamaConfig({ ...tinyConfigJson, eos_token_id: [7, 9] }).eosTokenId).toBe(7);
  });

  it('writes a config.json that reads back to the same configuration', () => {
    const c = parseLlamaConfig({ ...tinyConfigJson, bos_token_id: 1, eos_token_id: 2 });
    expect(parseLlamaConfig(llamaConfigToJson(c))).toEqual(c);
  });

  it('refuses options the model does not implement, naming the key and the file', () => {
    expect(refusal({ ...tinyConfigJson, rope_scaling: { type: 'linear', factor: 2 } })).toMatch(/dir\/config\.json: 'rope_scaling' has rope type 'linear'/);
    expect(refusal({ ...tinyConfigJson, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } })).toMatch(/'rope_parameters' has rope type 'yarn'/);
    expect(refusal({ ...tinyConfigJson, hidden_act: 'gelu' })).toMatch(/'hidden_act' is 'gelu'/);
    expect(refusal({ ...tinyConfigJson, model_type: 'phi3' })).toMatch(/'model_type' is 'phi3'/);
    // Another kind of model, without a decoder's keys: named by its model_type, not by a missing key.
    expect(refusal({ model_type: 'vit', hidden_size: 768, image_size: 224 })).toMatch(/dir\/config\.json: 'model_type' is 'vit'/);
    expect(refusal({ ...tinyConfigJson, attention_dropout: 0.1 })).toMatch(/'attention_dropout' is 0.1/);
  });

  it('refuses missing or inconsistent sizes, naming the key', () => {
    const { hidden_size: _h, ...noHidden } = tinyConfigJson;
    expect(refusal(noHidden)).toMatch(/'hidden_size'/);
    expect(refusal({ ...tinyConfigJson, num_hidden_layers: 0 })).toMatch(/'num_hidden_layers'/);
    expect(refusal({ ...tinyConfigJson, vocab_size: 'many' })).toMatch(/'vocab_size'/);
    expect(refusal({ ...tinyConfigJson, num_key_value_heads: 3 })).toMatch(/'num_key_value_heads' \(3\) must divide num_attention_heads \(4\)/);
    expect(refusal({ ...tinyConfigJson, num_attention_heads: 3, num_key_value_heads: 3 })).toMatch(/'num_attention_heads' \(3\) must divide hidden_size \(16\)/);
    expect(refusal({ ...tinyConfigJson, head_dim: 5 })).toMatch(/'head_dim' \(5\) must be even/);
    expect(refusal([1, 2])).toMatch(/FL_ERR_MODEL_CONFIG/);
  });
});
