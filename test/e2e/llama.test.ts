/**
 * The agent with a `llama` model: a tiny random Llama checkpoint (HF layout, byte tokenizer.json)
 * written here, LoRA on q_proj and v_proj, two agents training on JSONL texts with client-side
 * DP-SGD calibrated to a target epsilon, through the real coordinator, with Fed-SB.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveLlamaCheckpoint } from '../../client/checkpoint-save.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaModel } from '../../client/models/llama.js';
import { byteTokenizerJson } from '../../client/tokenizer-bytes.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { makeAgent, startCoordinator, tempDir, wasmBackend } from './harness.js';

let modelDir: string;
let sha256: string;
const files: string[] = [];

const TEXTS = [
  'the cat sat on the mat', 'a stitch in time saves nine', 'all that glitters is not gold', 'fortune favours the bold',
  'the early bird catches the worm', 'look before you leap', 'time and tide wait for no one', 'practice makes perfect',
  'still waters run deep', 'two wrongs do not make a right', 'the pen is mightier than the sword', 'when in rome do as romans do',
];

beforeAll(async () => {
  await wasmBackend();
  const config = parseLlamaConfig({
    model_type: 'llama', vocab_size: 259, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 100, max_position_embeddings: 32, tie_word_embeddings: false,
  });
  const weights = randomLlamaWeights(config, 5);
  const model = await LlamaModel.build(config, (name) => weights.get(name)!);
  modelDir = tempDir('llama');
  sha256 = await saveLlamaCheckpoint(model, modelDir, { tokenizer: byteTokenizerJson() });
  model.dispose();
  const dataDir = tempDir('text');
  for (let k = 0; k < 2; k++) {
    const file = join(dataDir, `texts-${k}.jsonl`);
    writeFileSync(file, TEXTS.slice(k * 6, k * 6 + 6).map((text) => JSON.stringify({ text })).join('\n') + '\n');
    files.push(file);
  }
});

describe('a llama job with client-side DP', () => {
  it('completes with LoRA on q_proj and v_proj, each client within its target epsilon', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob({
        strategy: 'fedsb', rounds: 2, clientsPerRound: 2, minClients: 2, overSelection: 0,
        model: { sha256, targetModules: ['q_proj', 'v_proj'] }, rank: 2, seed: 3,
        training: { epochs: 1, batchSize: 3, lr: 0.01 },
        privacy: { client: { targetEpsilon: 8, clip: 1 }, budget: { epsilon: 8, delta: 1e-5 } },
      });
      const clients = await Promise.all(files.map(async (f) => makeAgent(api.url, jobId, await api.token(jobId), modelDir, f)));
      expect(clients[0]!.model.kind).toBe('llama');
      const summaries = await Promise.all(clients.map((c) => c.agent.run()));
      const job = await api.job(jobId);
      expect(job.status).toBe('completed');
      expect(job.roundsDetail).toHaveLength(2);
      for (const r of job.roundsDetail) {
        expect(r.participants).toHaveLength(2);
        expect(r.metrics.train_loss).toBeGreaterThan(0);
      }
      for (const s of summaries) {
        expect(s.status).toBe('completed');
        expect(s.updatesAccepted).toBe(2);
        // q = 3/6, one epoch = 2 DP-SGD steps per round, 2 rounds: sigma was calibrated for these 4 steps,
        // so the epsilon spent is the accountant's for (q, sigma, 4 steps), just under the target.
        const eps = s.clientEpsilon!;
        expect(eps.steps).toBe(4);
        expect(eps.samplingRate).toBe(0.5);
        expect(eps.epsilon).toBe(epsilonOfSampledGaussian(0.5, eps.noiseMultiplier, 4, 1e-5).epsilon);
        expect(eps.epsilon).toBeLessThanOrEqual(8);
        // Calibration is tight (sigma within 1e-9 relative of the smallest): epsilon is within 0.1% of the target.
        expect(eps.epsilon).toBeGreaterThan(8 * 0.999);
      }
    } finally {
      await coordinator.stop();
    }
  });
});
