/** The tiny config of the brief: 2 layers, hidden 16, 4 query heads sharing 2 key/value heads. */
export const tinyConfigJson = {
  model_type: 'llama',
  vocab_size: 37,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 100, // small theta so every frequency turns visibly over a few positions
  max_position_embeddings: 32,
  tie_word_embeddings: false,
};
