/**
 * The decoder families beside Llama (client/models/llama-config.ts): each is written as a tiny
 * random checkpoint in the transformers layout by our own writer (single file or sharded, F32,
 * F16 or BF16), loaded through loadLlamaCheckpoint, and its logits compared with the independent
 * float64 reference (llama-naive.ts), which adds biases, Llama 3's rope rescaling and Mistral's
 * sliding window from its own code.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { parseLlamaConfig, type LlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { llamaTensorShapes } from '../../client/models/llama-names.js';
import { ropeInverseFrequencies } from '../../client/models/llama-rope.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';
import { isFedloraError } from '../../shared/errors.js';
import { roundForHalf, writeCheckpoint, type FixtureDtype } from './llama-fixtures.js';
import { naiveLlamaLogits } from './llama-naive.js';

const base = {
  vocab_size: 41, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  rms_norm_eps: 1e-5, max_position_embeddings: 64,
};

/** Llama 3.2's rope_scaling, with L and theta shrunk so the 4 frequencies of head_dim 8 fall in all three bands. */
const llama3Json = {
  ...base, model_type: 'llama', rope_theta: 100, tie_word_embeddings: true,
  rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
};
/** Qwen2: biases on q/k/v, tied embeddings as Qwen2.5-0.5B, the sliding-window keys it ignores. */
const qwen2Json = { ...base, model_type: 'qwen2', rope_theta: 1000, tie_word_embeddings: true, use_sliding_window: false, sliding_window: 4096, max_window_layers: 2 };
/** Mistral: head_dim given (8 * 4 heads = 32 query features on hidden 24) and a window shorter than the sequence. */
const mistralJson = { ...base, model_type: 'mistral', hidden_size: 24, head_dim: 8, rope_theta: 1000, sliding_window: 4 };
/** Llama with both bias options: q/k/v/o and gate/up/down. */
const llamaBiasJson = { ...base, model_type: 'llama', rope_theta: 1000, attention_bias: true, mlp_bias: true };

interface Case { name: string; json: Record<string, unknown>; dtype: FixtureDtype; shards: number }
const CASES: Case[] = [
  { name: 'llama3 rope scaling, F32, single file', json: llama3Json, dtype: 'F32', shards: 1 },
  { name: 'qwen2, BF16, 3 shards', json: qwen2Json, dtype: 'BF16', shards: 3 },
  { name: 'mistral with a sliding window of 4, F16, 2 shards', json: mistralJson, dtype: 'F16', shards: 2 },
  { name: 'llama with attention_bias and mlp_bias, F32, 2 shards', json: llamaBiasJson, dtype: 'F32', shards: 2 },
];

const SEQS = [[1, 5, 9, 2, 40, 0, 7, 7, 13, 3, 21, 8], [3, 3, 3, 30, 12, 11, 4, 1, 39, 2, 2, 6]];

/** Random weights with random biases (init gives norms' 1s to every 1-D tensor), exact in F16/BF16 when asked. */
function weightsFor(config: LlamaConfig, seed: number, dtype: FixtureDtype): Map<string, Float32Array> {
  const w = randomLlamaWeights(config, seed, { std: 0.3, normJitter: 0.5 });
  let s = seed * 7919;
  for (const [name, v] of w) if (name.endsWith('.bias')) w.set(name, seededNormalValues(v.length, 0, 0.5, ++s));
  return dtype === 'F32' ? w : new Map([...w].map(([k, v]) => [k, roundForHalf(v)]));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function logitsOf(forward: (ids: tf.Tensor2D) => tf.Tensor): Promise<Float32Array> {
  const ids = tf.tensor2d(SEQS, [SEQS.length, SEQS[0]!.length], 'int32');
  const out = forward(ids);
  const v = (await out.data()) as Float32Array;
  tf.dispose([ids, out]);
  return v;
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fedlora-families-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('family config.json fields', () => {
  it('reads each family with its own rules', () => {
    const l3 = parseLlamaConfig(llama3Json);
    expect(l3).toMatchObject({ modelType: 'llama', qkvBias: false, oBias: false, mlpBias: false, headDim: 8 });
    expect(l3.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
    expect(l3.slidingWindow).toBeUndefined();
    expect(parseLlamaConfig(qwen2Json)).toMatchObject({ modelType: 'qwen2', qkvBias: true, oBias: false, mlpBias: false, tieWordEmbeddings: true });
    expect(parseLlamaConfig(qwen2Json).slidingWindow).toBeUndefined(); // use_sliding_window false: sliding_window is not read
    expect(parseLlamaConfig(mistralJson)).toMatchObject({ modelType: 'mistral', headDim: 8, slidingWindow: 4, qkvBias: false });
    const { sliding_window: _w, ...mistralNoWindow } = mistralJson;
    expect(parseLlamaConfig(mistralNoWindow).slidingWindow).toBe(4096); // MistralConfig's default
    expect(parseLlamaConfig({ ...mistralJson, sliding_window: null }).slidingWindow).toBeUndefined();
    expect(parseLlamaConfig(llamaBiasJson)).toMatchObject({ qkvBias: true, oBias: true, mlpBias: true });
    // transformers 5 keeps the rope type and theta together in rope_parameters; the older `type` key works too.
    const nested = parseLlamaConfig({ ...base, rope_parameters: { ...llama3Json.rope_scaling, rope_theta: 5e5 } });
    expect(nested.ropeTheta).toBe(5e5);
    expect(nested.ropeScaling?.factor).toBe(8);
    const { rope_type: _t, ...oldStyle } = llama3Json.rope_scaling;
    expect(parseLlamaConfig({ ...base, rope_scaling: { ...oldStyle, type: 'llama3' } }).ropeScaling?.highFreqFactor).toBe(4);
  });

  it('writes a config.json per family that reads back to the same configuration', async () => {
    const { llamaConfigToJson } = await import('../../client/models/llama-config.js');
    for (const json of [llama3Json, qwen2Json, mistralJson, llamaBiasJson]) {
      const c = parseLlamaConfig(json);
      expect(parseLlamaConfig(llamaConfigToJson(c))).toEqual(c);
    }
  });

  it('refuses what the decoder does not compute with FL_ERR_MODEL_CONFIG naming the field', () => {
    const refusal = (json: object): string => {
      try {
        parseLlamaConfig(json, 'm/config.json');
      } catch (e) {
        if (isFedloraError(e, 'FL_ERR_MODEL_CONFIG')) return e.message;
        throw e;
      }
      throw new Error('expected a refusal');
    };
    expect(refusal({ ...base, model_type: 'gemma' })).toMatch(/m\/config\.json: 'model_type' is 'gemma'; fedlora's decoder loads 'llama', 'mistral', 'qwen2'/);
    expect(refusal({ ...qwen2Json, use_sliding_window: true })).toMatch(/'use_sliding_window' is true/);
    expect(refusal({ ...qwen2Json, attention_bias: true })).toMatch(/'attention_bias' is true; transformers' qwen2 has fixed biases on q\/k\/v_proj only/);
    expect(refusal({ ...mistralJson, mlp_bias: true })).toMatch(/'mlp_bias' is true; transformers' mistral has no biases/);
    expect(refusal({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toMatch(/'rope_scaling' has rope type 'yarn'/);
    expect(refusal({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } })).toMatch(/'rope_scaling' has rope type 'dynamic'/);
    const { low_freq_factor: _l, ...noLow } = llama3Json.rope_scaling;
    expect(refusal({ ...base, rope_scaling: noLow })).toMatch(/'rope_scaling\.low_freq_factor' must be a positive number for rope type 'llama3', got undefined/);
    expect(refusal({ ...base, rope_scaling: { ...llama3Json.rope_scaling, high_freq_factor: 1 } })).toMatch(/'rope_scaling\.high_freq_factor' \(1\) must exceed low_freq_factor \(1\)/);
    expect(refusal({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.5 } })).toMatch(/'rope_parameters\.partial_rotary_factor' is 0\.5/);
    expect(refusal({ ...qwen2Json, layer_types: ['full_attention', 'sliding_attention'] })).toMatch(/'layer_types\.1' is 'sliding_attention'/);
    expect(refusal({ ...mistralJson, sliding_window: 0 })).toMatch(/'sliding_window'/);
    expect(refusal({ ...mistralJson, layer_types: ['sliding_attention', 'full_attention'] })).toMatch(/'layer_types\.1' is 'full_attention'; with sliding_window 4 every layer is 'sliding_attention'/);
    expect(parseLlamaConfig({ ...mistralJson, layer_types: ['sliding_attention', 'sliding_attention'] }).slidingWindow).toBe(4);
  });
});

describe('Llama 3 rope frequencies', () => {
  it('rescales each band as transformers does (values computed in Python from the formula)', () => {
    const c = parseLlamaConfig(llama3Json);
    const inv = ropeInverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
    // theta^(-2i/8) = 1, 0.316, 0.1, 0.0316; wavelengths 6.3 (< 64/4: kept), 19.9 and 62.8 (smoothed), 199 (> 64: / 8).
    const want = [1.0, 0.24438459943539834, 0.013042256043820465, 0.003952847075210474];
    inv.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 14));
    expect([...ropeInverseFrequencies(8, 100)]).toEqual([1, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75]);
  });
});

describe.each(['cpu', 'wasm'])('family checkpoints on the %s backend against the float64 reference', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  CASES.forEach((c, index) => {
    it(c.name, async () => {
      const config = parseLlamaConfig(c.json);
      const weights = weightsFor(config, 31 + index, c.dtype);
      const dir = join(root, `${backend}-${index}`);
      await writeCheckpoint(dir, c.json, weights, llamaTensorShapes(config), { dtype: c.dtype, shards: c.shards });
      const { model, sha256 } = await loadLlamaCheckpoint(dir);
      expect(sha256).toMatch(/^[0-9a-f]{64}$/);
      const got = await logitsOf((ids) => model.logits(ids));
      model.dispose();
      const want = SEQS.flatMap((s) => naiveLlamaLogits(config, weights, s).flat());
      const scale = Math.max(...want.map(Math.abs));
      expect(scale).toBeGreaterThan(0.5);
      // The float32 budget of llama.test.ts (1e-4 of the largest logit, ~10x the accumulated rounding).
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * scale);
      // The family's feature matters at that tolerance: the reference without it is far off.
      const without = { ...config, ropeScaling: undefined, slidingWindow: undefined };
      const plainWeights = new Map([...weights].filter(([name]) => !name.endsWith('.bias')));
      const plain = SEQS.flatMap((s) => naiveLlamaLogits(without, plainWeights, s).flat());
      expect(maxAbsDiff(plain, want)).toBeGreaterThan(1e-2 * scale);
    });
  });
});

describe('saving a family model (cpu)', () => {
  it('writes a Qwen2 model with its biases that loads back to the same logits (pre-training path: biases are variables)', async () => {
    await tf.setBackend('cpu');
    const { saveLlamaCheckpoint } = await import('../../client/checkpoint-save.js');
    const { LlamaModel } = await import('../../client/models/llama.js');
    const { readFile } = await import('node:fs/promises');
    const config = parseLlamaConfig(qwen2Json);
    const weights = weightsFor(config, 12, 'F32');
    const model = await LlamaModel.build(config, (n) => weights.get(n)!, { trainable: true });
    expect(model.trainableVariables()).toHaveLength(1 + 2 * (2 + 7 + 3) + 1); // embedding; per layer 2 norms, 7 linears, 3 biases; final norm
    const dir = join(root, 'qwen2-saved');
    await saveLlamaCheckpoint(model, dir);
    const want = await logitsOf((ids) => model.logits(ids));
    model.dispose();
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' });
    const { model: loaded } = await loadLlamaCheckpoint(dir, { hash: false });
    expect(await logitsOf((ids) => loaded.logits(ids))).toEqual(want);
    loaded.dispose();
  });
});

describe('LoRA on a Qwen2 checkpoint (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('adapts q/k/v with their biases kept in the base: W + s B A, plus b', async () => {
    const config = parseLlamaConfig(qwen2Json);
    const weights = weightsFor(config, 77, 'F32');
    const dir = join(root, 'qwen2-lora');
    await writeCheckpoint(dir, qwen2Json, weights, llamaTensorShapes(config));
    const { model: baseModel } = await loadLlamaCheckpoint(dir, { hash: false });
    const before = await logitsOf((ids) => baseModel.logits(ids));
    const model = LlamaLoraModel.attach(baseModel, { targetModules: ['q_proj', 'k_proj', 'v_proj'], variant: 'lora', rank: 2, alpha: 4, seed: 5 });
    expect([...model.modules().keys()]).toHaveLength(6);
    expect(maxAbsDiff(await logitsOf((ids) => model.forward(ids)), before)).toBe(0); // B = 0: the biases still apply
    const merged = new Map(weights);
    let seed = 500;
    for (const m of model.modules().values()) {
      const B = seededNormalValues(m.outFeatures * m.rank, 0, 0.3, seed++);
      m.setFactors({ B });
      const A = (await m.readFactors()).A!;
      const name = `${m.path}.weight`;
      const w = weights.get(name)!;
      const out = new Float32Array(w.length);
      for (let i = 0; i < m.outFeatures; i++) {
        for (let j = 0; j < m.inFeatures; j++) {
          let acc = 0;
          for (let k = 0; k < m.rank; k++) acc += B[i * m.rank + k]! * A[k * m.inFeatures + j]!;
          out[i * m.inFeatures + j] = w[i * m.inFeatures + j]! + (m.alpha / m.rank) * acc;
        }
      }
      merged.set(name, out);
    }
    const got = await logitsOf((ids) => model.forward(ids));
    const want = SEQS.flatMap((s) => naiveLlamaLogits(config, merged, s).flat());
    const scale = Math.max(...want.map(Math.abs));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * scale);
    model.dispose();
  });
});

describe('fedlora train on a Qwen2 folder with pre-tokenised data (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('needs no tokenizer.json, trains q/v LoRA and writes a CAUSAL_LM adapter', async () => {
    const { runLocalTraining } = await import('../../client/train/local-run.js');
    const { readFile, writeFile } = await import('node:fs/promises');
    const config = parseLlamaConfig(qwen2Json);
    const dir = join(root, 'qwen2-train');
    await writeCheckpoint(dir, qwen2Json, weightsFor(config, 5, 'F32'), llamaTensorShapes(config));
    const data = join(root, 'ids.jsonl');
    await writeFile(data, Array.from({ length: 10 }, (_, i) => JSON.stringify({ input_ids: [1 + i, 2 * i + 3, 40 - i, 7, 9 + i] })).join('\n'));
    const out = join(root, 'qwen2-adapter');
    const res = await runLocalTraining({ modelDir: dir, dataPath: data, epochs: 1, batchSize: 4, seqLen: 4, rank: 2, lr: 1e-2, outDir: out });
    expect(res).toMatchObject({ modelType: 'qwen2', trainExamples: 8, testExamples: 2 });
    expect(Number.isFinite(res.after!.loss) && Number.isFinite(res.before!.loss)).toBe(true); // evaluated on the 2 held-out rows
    const adapterConfig = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as { task_type: string; target_modules: string[] };
    expect(adapterConfig.task_type).toBe('CAUSAL_LM');
    // An id beyond the model's vocabulary is refused with the line.
    await writeFile(data, '{"input_ids":[1,2,3]}\n{"input_ids":[1,41]}\n{"input_ids":[4,5]}\n{"input_ids":[6,7]}\n{"input_ids":[8,9]}\n');
    await expect(runLocalTraining({ modelDir: dir, dataPath: data, epochs: 1, outDir: out })).rejects.toThrow(/ids\.jsonl:2 field 'input_ids\[1\]': token id 41 is not below the model's vocab_size 41/);
  });

  it("the agent's local data: input_ids rows load for a folder without tokenizer.json, texts are refused saying how to proceed", async () => {
    const { loadBaseModel } = await import('../../client/agent/base-model.js');
    const { loadLocalData } = await import('../../client/agent/local-data.js');
    const { writeFile } = await import('node:fs/promises');
    const config = parseLlamaConfig(qwen2Json);
    const dir = join(root, 'qwen2-agent');
    await writeCheckpoint(dir, qwen2Json, weightsFor(config, 6, 'F32'), llamaTensorShapes(config));
    const model = await loadBaseModel(dir);
    expect(model.kind).toBe('llama');
    expect(model.llama?.modelType).toBe('qwen2');
    const ids = join(root, 'agent-ids.jsonl');
    await writeFile(ids, '{"input_ids":[1,2,3]}\n{"input_ids":[4,5]}\n{"input_ids":[6,7,8,9]}\n');
    const local = await loadLocalData(ids, model, { seqLen: 4 });
    expect(local.examples).toBe(3);
    const texts = join(root, 'agent-texts.jsonl');
    await writeFile(texts, '{"text":"hello"}\n');
    await expect(loadLocalData(texts, model)).rejects.toThrow(/FL_ERR_MODEL_CONFIG: .*tokenizer\.json: missing; .*pre-tokenised as JSONL rows \{"input_ids"/);
  });
});
