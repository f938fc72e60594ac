/**
 * `--threads` where it is used: a round of the agent (round-handler.ts `trainRound` with a train
 * worker pool whose workers build the round's model from the offer, FLoRA's merge into the base
 * weights included) and `fedlora train` (local-run.ts), on the wasm backend, with real model
 * folders and data files: N threads give the update of one thread within the float32 tolerance
 * argued in parallel-trainer.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBaseModel, type BaseModel } from '../../../client/agent/base-model.js';
import { loadLocalData, type LocalData } from '../../../client/agent/local-data.js';
import { trainRound } from '../../../client/agent/round-handler.js';
import { runLocalTraining } from '../../../client/train/local-run.js';
import { TrainWorkerPool } from '../../../client/train/train-worker-pool.js';
import { encodeOfferedAdapter } from '../../../coordinator/state-codec.js';
import { peftTensorNames, type Adapter } from '../../../shared/adapter.js';
import { OfferSchema, type Offer } from '../../../shared/protocol/events.js';
import { decodeSafetensors } from '../../../shared/safetensors/codec.js';
import { MLP_TARGETS, wasmBackend, writeBaseModel, writeDigitShards } from '../../e2e/harness.js';
import { maxAbsDiff } from '../lora/reference.js';

let modelDir: string;
let dataFile: string;
let base: BaseModel;
let data: LocalData;

beforeAll(async () => {
  await wasmBackend();
  modelDir = await writeBaseModel(5);
  [dataFile] = await writeDigitShards(1, 96) as [string];
  base = await loadBaseModel(modelDir);
  data = await loadLocalData(dataFile, base);
});

const values = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 0.37) * 0.2);

/** A FLoRA round (start fresh: the offered sum is merged into the base weights first). */
function floraOffer(): Offer {
  const shapes = base.adaptable.filter((m) => MLP_TARGETS.includes(m.path));
  const K = 3;
  const state: Adapter = {
    layout: { variant: 'lora', modules: shapes.map((m) => ({ ...m, rank: K, alpha: 2 * K })) },
    factors: new Map(shapes.map((m, k) => [m.path, { A: values(K * m.inFeatures, 2 * k), B: values(m.outFeatures * K, 2 * k + 1) }])),
  };
  return OfferSchema.parse({
    jobId: 'job1', round: 2, attempt: 0, deadline: Date.now() + 60_000, maxUpdateBytes: 1 << 20,
    state: encodeOfferedAdapter(state),
    plan: {
      strategy: 'flora', variant: 'lora', rank: 2, alpha: 4, modules: shapes.map((m) => ({ ...m, rank: 2, alpha: 4 })), trainable: ['A', 'B'],
      start: 'fresh', seed: 41,
      updateTensors: shapes.flatMap((m) => [
        { name: peftTensorNames(m.path).A, shape: [2, m.inFeatures] }, { name: peftTensorNames(m.path).B, shape: [m.outFeatures, 2] },
      ]),
      training: { epochs: 1, batchSize: 24, lr: 0.01, schedule: 'constant', warmupSteps: 0, weightDecay: 0 },
    },
  });
}

function tensors(payload: Uint8Array): Map<string, Float32Array> {
  const decoded = decodeSafetensors(payload);
  return new Map(decoded.tensors.map((t) => [t.name, t.data as Float32Array]));
}

describe('--threads in a round and in fedlora train', () => {
  it('a FLoRA round on 3 threads (workers merge the offered sum themselves) sends the update of 1 thread', async () => {
    const o = floraOffer();
    const one = await trainRound(o, base, data);
    const pool = await TrainWorkerPool.start({ threads: 3, base: { kind: 'dir', modelDir }, source: data.source });
    try {
      const three = await trainRound(o, base, data, {}, pool);
      expect(three.steps).toBe(one.steps);
      const [a, b] = [tensors(one.payload), tensors(three.payload)];
      expect([...b.keys()]).toEqual([...a.keys()]);
      let moved = 0;
      for (const [name, t] of a) {
        expect(maxAbsDiff(t, b.get(name)!)).toBeLessThan(1e-6);
        moved = Math.max(moved, Math.max(...t.map(Math.abs)));
      }
      expect(moved).toBeGreaterThan(1e-2); // the update is not trivially zero
      // the workers freed the round's model: a second round on the same pool works the same
      const again = await trainRound(o, base, data, {}, pool);
      for (const [name, t] of tensors(again.payload)) expect(maxAbsDiff(t, b.get(name)!)).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('fedlora train (runLocalTraining) with threads 2 = threads 1, plain and with DP-SGD', async () => {
    const common = { modelDir, dataPath: dataFile, variant: 'lora' as const, rank: 4, epochs: 1, batchSize: 16, lr: 1e-2, testFraction: 0.25 };
    const one = await runLocalTraining({ ...common, threads: 1 });
    const two = await runLocalTraining({ ...common, threads: 2 });
    expect(two.train.steps).toBe(one.train.steps);
    one.train.losses.forEach((l, i) => expect(Math.abs(l - two.train.losses[i]!)).toBeLessThan(1e-5));
    expect(Math.abs(one.after!.loss - two.after!.loss)).toBeLessThan(1e-5);
    const { seededTestSource } = await import('../../../privacy/random.js');
    const dp = (seed: number) => ({ noiseMultiplier: 1, clipNorm: 0.5, randomSource: seededTestSource(seed) });
    const dpOne = await runLocalTraining({ ...common, threads: 1, dp: dp(9) });
    const dpTwo = await runLocalTraining({ ...common, threads: 2, dp: dp(9) });
    expect(Math.abs(dpOne.after!.loss - dpTwo.after!.loss)).toBeLessThan(1e-5);
    expect(dpTwo.train.dp!.steps).toBe(dpOne.train.dp!.steps);
  });
});
