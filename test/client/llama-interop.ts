/**
 * Interop check with Hugging Face transformers + PEFT (run by hand, not by vitest: it needs
 * python3 with torch, transformers and peft, which the GPU machine has):
 *
 *   npx tsx test/client/llama-interop.ts interop-llama          # here: checkpoints, adapters, our logits
 *   python3 test/client/llama-interop.py interop-llama          # there: HF logits vs ours
 *
 * Writes tiny random Llama checkpoints with our writer (one untied with GQA and the byte
 * tokenizer files, one with tied embeddings and head_dim set), LoRA adapters of the three
 * variants exported in PEFT format (Fed-SB folded, B' = B R), and the logits our tfjs model
 * computes for fixed token ids, to ours.json.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { saveLlamaCheckpoint } from '../../client/checkpoint-save.js';
import { loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { readFactorsOf } from '../../client/lora/lora-model.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';
import { LlamaModel } from '../../client/models/llama.js';
import { byteTokenizerJson } from '../../client/tokenizer-bytes.js';
import type { AdapterVariant, ModuleFactors } from '../../shared/adapter.js';
import { writePeftAdapterDir } from '../../shared/peft.js';

const out = process.argv[2] ?? 'interop-llama';
await tf.setBackend(process.argv[3] ?? 'wasm');

const cases = [
  {
    name: 'untied-gqa',
    config: { model_type: 'llama', vocab_size: 259, hidden_size: 48, intermediate_size: 80, num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 10000, max_position_embeddings: 64, tie_word_embeddings: false },
    tokenizer: true,
  },
  {
    name: 'tied-headdim',
    config: { model_type: 'llama', vocab_size: 101, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16, rms_norm_eps: 1e-5, rope_theta: 500, max_position_embeddings: 64, tie_word_embeddings: true },
    tokenizer: false,
  },
];
const adapters: Array<{ name: string; variant: AdapterVariant; targets: string[] }> = [
  { name: 'lora-qv', variant: 'lora', targets: ['q_proj', 'v_proj'] },
  { name: 'ffa-all', variant: 'ffa', targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  { name: 'fedsb-qo', variant: 'fedsb', targets: ['q_proj', 'o_proj'] },
];

const record: Record<string, unknown> = {};
let seed = 1000;
const random = (shape: number[], std: number): Float32Array => seededNormalValues(shape.reduce((a, b) => a * b, 1), 0, std, seed++);

for (const c of cases) {
  const config = parseLlamaConfig(c.config);
  const dir = join(out, c.name);
  const weights = randomLlamaWeights(config, 7, { std: 0.2, normJitter: 0.3 });
  const built = await LlamaModel.build(config, (n) => weights.get(n)!);
  const sha256 = await saveLlamaCheckpoint(built, dir, c.tokenizer ? { tokenizer: byteTokenizerJson() } : {});
  built.dispose();
  const ids = [Array.from({ length: 16 }, (_, i) => (i * 37 + 5) % config.vocabSize), Array.from({ length: 16 }, (_, i) => (i * 11 + 3) % config.vocabSize)];
  const logits = async (model: { forward?: (x: tf.Tensor) => tf.Tensor; logits?: (x: tf.Tensor2D) => tf.Tensor }): Promise<number[]> => {
    const x = tf.tensor2d(ids, [2, 16], 'int32');
    const y = model.forward ? model.forward(x) : model.logits!(x);
    const v = Array.from(await y.data());
    tf.dispose([x, y]);
    return v;
  };
  const loaded = await loadLlamaCheckpoint(dir);
  const entry: Record<string, unknown> = { sha256, ids, base: await logits(loaded.model), adapters: {} };
  loaded.model.dispose();
  for (const a of adapters) {
    const { model: base } = await loadLlamaCheckpoint(dir, { hash: false });
    const model = LlamaLoraModel.attach(base, { targetModules: a.targets, variant: a.variant, rank: 4, alpha: 8, seed: 3 }, { sha256 });
    // Non-zero factors everywhere (a fresh adapter has B = 0 or R = 0 and would prove nothing).
    const factors = new Map<string, ModuleFactors>();
    for (const m of model.layout().modules) {
      factors.set(m.path, { A: random([m.rank, m.inFeatures], 0.3), B: random([m.outFeatures, m.rank], 0.3), ...(a.variant === 'fedsb' ? { R: random([m.rank, m.rank], 0.5) } : {}) });
    }
    model.loadGlobal({ layout: model.layout(), factors });
    const adapterDir = join(dir, `adapter-${a.name}`);
    // Export every factor (FFA's frozen A, Fed-SB's A and B too): PEFT needs lora_A and lora_B.
    const full = await readFactorsOf(model.modules(), 'all');
    await writePeftAdapterDir(adapterDir, { layout: model.layout(), factors: full });
    (entry['adapters'] as Record<string, unknown>)[a.name] = await logits(model);
    model.dispose();
  }
  record[c.name] = entry;
}
await writeFile(join(out, 'ours.json'), JSON.stringify(record));
console.log(`wrote ${Object.keys(record).length} checkpoints with ${adapters.length} adapters each under ${out}/ (backend ${tf.getBackend()})`);
