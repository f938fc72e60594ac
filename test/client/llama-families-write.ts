/**
 * Writes small checkpoints of each decoder family with our own writer, in the layout
 * tools/gpu/make_checkpoints.py gets from transformers (config.json, weights single or sharded in
 * F32/F16/BF16, reference.json, reference.safetensors with `logits`), the reference logits coming
 * from the independent float64 forward (llama-naive.ts). So tools/gpu/check-families.ts can be run
 * end to end without torch:
 *
 *   npx tsx test/client/llama-families-write.ts OUT
 *   npx tsx tools/gpu/check-families.ts --dir OUT --backend wasm --json OUT/families.json
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { llamaTensorShapes } from '../../client/models/llama-names.js';
import { seededNormalValues, seededUniformValues } from '../../client/lora/seeded-draws.js';
import { writeSafetensorsFile } from '../../shared/safetensors/index.js';
import { makeTensor } from '../../shared/tensor.js';
import { roundForHalf, writeCheckpoint, type FixtureDtype } from './llama-fixtures.js';
import { naiveLlamaLogits } from './llama-naive.js';

const small = { vocab_size: 512, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 };
const FOLDERS: Array<{ name: string; json: Record<string, unknown>; dtype: FixtureDtype; shards: number }> = [
  {
    name: 'llama3-own', dtype: 'F32', shards: 1,
    json: { ...small, model_type: 'llama', rms_norm_eps: 1e-5, tie_word_embeddings: true, max_position_embeddings: 1024,
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
  },
  { name: 'qwen2-own', dtype: 'BF16', shards: 3, json: { ...small, model_type: 'qwen2', rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true, use_sliding_window: false, sliding_window: 32768 } },
  { name: 'mistral-own', dtype: 'F16', shards: 2, json: { ...small, model_type: 'mistral', head_dim: 32, rms_norm_eps: 1e-5, rope_theta: 1e4, sliding_window: 8 } },
  { name: 'llama-bias-own', dtype: 'F32', shards: 2, json: { ...small, model_type: 'llama', rope_theta: 1e4, attention_bias: true, mlp_bias: true } },
];

const out = resolve(process.argv[2] ?? 'out/families-own');
const T = 24;
for (const [index, f] of FOLDERS.entries()) {
  const config = parseLlamaConfig(f.json);
  const weights = randomLlamaWeights(config, 100 + index, { std: 0.08, normJitter: 0.5 });
  for (const [name, v] of weights) if (name.endsWith('.bias')) weights.set(name, seededNormalValues(v.length, 0, 0.3, 9000 + index));
  const stored = f.dtype === 'F32' ? weights : new Map([...weights].map(([k, v]) => [k, roundForHalf(v)]));
  const dir = join(out, f.name);
  await writeCheckpoint(dir, f.json, stored, llamaTensorShapes(config), { dtype: f.dtype, shards: f.shards });
  const ids = Array.from(seededUniformValues(T, 0, config.vocabSize, 77 + index), (v) => Math.min(config.vocabSize - 1, Math.floor(v)));
  const logits = Float32Array.from(naiveLlamaLogits(config, stored, ids).flat());
  await writeSafetensorsFile(join(dir, 'reference.safetensors'), [makeTensor('logits', [1, T, config.vocabSize], logits)], { format: 'pt' });
  await writeFile(join(dir, 'reference.json'), JSON.stringify({ family: f.name, variant: 'own', model_type: config.modelType, dtype: f.dtype, input_ids: ids,
    logits: 'float64 reference forward of test/client/llama-naive.ts on the stored values, rounded to float32' }, null, 1));
  process.stdout.write(`${dir}: ${config.modelType}, ${f.dtype}, ${f.shards} weight file(s), ${T} tokens\n`);
}
