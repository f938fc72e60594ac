/**
 * The job spec's targetModules are the truth (issue 12 item 8): a llama job on q, k, v and o
 * joined by agents given no module list trains and exports all four in every layer (the agents
 * learn them from the coordinator); a client whose model lacks some of them is refused with
 * FL_ERR_BASE_MODEL_MISMATCH, and the job does not adopt its smaller list (it stays pending, and
 * the next clients still get the four).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveLlamaCheckpoint } from '../../client/checkpoint-save.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaModel } from '../../client/models/llama.js';
import { byteTokenizerJson } from '../../client/tokenizer-bytes.js';
import { readPeftAdapterDir } from '../../shared/peft.js';
import { exportAdapterDir } from '../../coordinator/jobs.js';
import { TestClient } from '../coordinator/protocol-client.js';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { makeAgent, startCoordinator, startRun, tempDir, wasmBackend } from './harness.js';

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
let modelDir: string;
let sha256: string;
const files: string[] = [];

beforeAll(async () => {
  await wasmBackend();
  const config = parseLlamaConfig({
    model_type: 'llama', vocab_size: 259, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 100, max_position_embeddings: 32, tie_word_embeddings: false,
  });
  const weights = randomLlamaWeights(config, 9);
  const model = await LlamaModel.build(config, (name) => weights.get(name)!);
  modelDir = tempDir('llama-targets');
  sha256 = await saveLlamaCheckpoint(model, modelDir, { tokenizer: byteTokenizerJson() });
  model.dispose();
  const dataDir = tempDir('text');
  for (let k = 0; k < 2; k++) {
    const file = join(dataDir, `t${k}.jsonl`);
    writeFileSync(file, ['one two three', 'four five six', 'seven eight'].map((t) => JSON.stringify({ text: `${t} ${k}` })).join('\n') + '\n');
    files.push(file);
  }
});

describe("the job's targetModules", () => {
  it('are what agents train and the export holds; a client lacking some is refused and never narrows the job', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob({ strategy: 'fedavg', rounds: 1, clientsPerRound: 2, minClients: 2, overSelection: 0, model: { sha256, targetModules: TARGETS }, rank: 2, seed: 1, training: { epochs: 1, batchSize: 3, lr: 0.01 } });

      // A client whose model has only q_proj and v_proj (the old default) comes first.
      const agentsModel = await loadBaseModel(modelDir);
      const qv = agentsModel.adaptable.filter((m) => /\.(q_proj|v_proj)$/.test(m.path));
      expect(qv).toHaveLength(4);
      const narrow = new TestClient(api.url);
      const refused = await narrow.join({ jobId, token: await api.token(jobId), sha256, modules: qv }).then(
        () => null,
        (e: { code: string; message: string }) => e,
      );
      narrow.socket.disconnect();
      expect(refused?.code).toBe('FL_ERR_BASE_MODEL_MISMATCH');
      expect(refused?.message).toMatch(/targetModules 'k_proj', 'o_proj' match no module of the client's model/);
      expect((await api.job(jobId)).status).toBe('pending');

      // Agents told nothing about modules: the coordinator's spec decides.
      const agents = await Promise.all(files.map(async (f) => makeAgent(api.url, jobId, await api.token(jobId), modelDir, f)));
      const summaries = await Promise.all(agents.map((a) => startRun(a.agent)));
      for (const s of summaries) expect(s.updatesAccepted).toBe(1);
      const view = await api.job(jobId);
      expect(view.status).toBe('completed');

      const out = join(mkdtempSync(join(tmpdir(), 'fedlora-targets-')), 'adapter');
      await exportAdapterDir(coordinator.store, jobId, out);
      const adapter = await readPeftAdapterDir(out);
      const exported = [...adapter.factors.keys()].sort();
      expect(exported).toHaveLength(8);
      expect(new Set(exported.map((p) => p.split('.').at(-1)))).toEqual(new Set(TARGETS));
    } finally {
      await coordinator.stop();
    }
  }, 120_000);
});
