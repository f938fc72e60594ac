/**
 * How a round's model starts (client/agent/round-handler.ts `startModel`), checked against float64
 * references computed here from the checkpoint: FLoRA's merge W0 + s B A into the pristine base
 * with fresh factors from the round seed, and a `global` start that loads the offered factors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBaseModel, type BaseModel } from '../../client/agent/base-model.js';
import { startModel } from '../../client/agent/round-handler.js';
import { kaimingUniformA, moduleSeed } from '../../client/lora/init.js';
import { readMlpCheckpoint, type MlpCheckpoint } from '../../client/models/mlp-checkpoint.js';
import type { Adapter } from '../../shared/adapter.js';
import { OfferSchema, type Offer } from '../../shared/protocol/events.js';
import { encodeOfferedAdapter } from '../../coordinator/state-codec.js';
import { decodeOfferedState } from '../../client/agent/update-payload.js';
import { wasmBackend, writeBaseModel } from '../e2e/harness.js';

let base: BaseModel;
let checkpoint: MlpCheckpoint;
const SHAPES = [
  { path: 'layers.0', outFeatures: 12, inFeatures: 64 },
  { path: 'head', outFeatures: 10, inFeatures: 12 },
];

beforeAll(async () => {
  await wasmBackend();
  const dir = await writeBaseModel(3);
  base = await loadBaseModel(dir);
  checkpoint = await readMlpCheckpoint(dir);
});

const values = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 0.37) * 0.2);

function offer(variant: 'lora' | 'fedsb', start: 'global' | 'fresh', state: Adapter | null, rank = 2): Offer {
  const trainable = variant === 'lora' ? ['A', 'B'] : ['R'];
  return OfferSchema.parse({
    jobId: 'job1',
    round: 2,
    attempt: 0,
    deadline: Date.now() + 60_000,
    maxUpdateBytes: 1 << 20,
    state: encodeOfferedAdapter(state),
    plan: {
      strategy: variant === 'lora' ? 'flora' : 'fedsb',
      variant,
      rank,
      alpha: rank,
      modules: SHAPES.map((m) => ({ ...m, rank, alpha: rank })),
      trainable,
      start,
      updateTensors: [],
      training: { epochs: 1, batchSize: 16, lr: 0.01, schedule: 'constant', warmupSteps: 0, weightDecay: 0 },
      seed: 41,
    },
  });
}

describe('startModel', () => {
  it('FLoRA (fresh): the base weights become W0 + s B A of the offered sum, the factors fresh from the round seed', async () => {
    // The offered sum of earlier rounds: rank K = 3, alpha 6, so s = 2.
    const K = 3;
    const state: Adapter = {
      layout: { variant: 'lora', modules: SHAPES.map((m) => ({ ...m, rank: K, alpha: 2 * K })) },
      factors: new Map(SHAPES.map((m, k) => [m.path, { A: values(K * m.inFeatures, 2 * k), B: values(m.outFeatures * K, 2 * k + 1) }])),
    };
    const o = offer('lora', 'fresh', state);
    const model = await startModel(o, base, decodeOfferedState(o.state));
    try {
      for (const m of SHAPES) {
        const layer = model.modules().get(m.path)!;
        const merged = await layer.readBaseWeight();
        const W0 = checkpoint.weights.get(`${m.path}.weight`)!;
        const { A, B } = state.factors.get(m.path)!;
        let worst = 0;
        for (let i = 0; i < m.outFeatures; i++) {
          for (let j = 0; j < m.inFeatures; j++) {
            let dot = 0; // float64 reference of (B A)[i, j]
            for (let k = 0; k < K; k++) dot += B![i * K + k]! * A![k * m.inFeatures + j]!;
            worst = Math.max(worst, Math.abs(merged[i * m.inFeatures + j]! - (W0[i * m.inFeatures + j]! + 2 * dot)));
          }
        }
        // float32 storage of values ~0.5: rounding ~3e-8 per value; 1e-6 leaves room for the matmul's float32 sum of 3 terms.
        expect(worst).toBeLessThan(1e-6);
        const fresh = await layer.readFactors('all');
        expect(fresh.A).toEqual(kaimingUniformA(2, m.inFeatures, moduleSeed(41, m.path)));
        expect([...fresh.B!].every((v) => v === 0)).toBe(true);
      }
    } finally {
      model.dispose();
    }
  });

  it('FLoRA round 0 (no state yet): the pristine base with fresh factors', async () => {
    const o = offer('lora', 'fresh', null);
    const model = await startModel(o, base, null);
    try {
      expect(await model.modules().get('head')!.readBaseWeight()).toEqual(checkpoint.weights.get('head.weight'));
    } finally {
      model.dispose();
    }
  });

  it('Fed-SB (global): loads the frozen A and B and the averaged R the coordinator offers', async () => {
    const state: Adapter = {
      layout: { variant: 'fedsb', modules: SHAPES.map((m) => ({ ...m, rank: 2, alpha: 2 })) },
      factors: new Map(SHAPES.map((m, k) => [m.path, { A: values(2 * m.inFeatures, k), B: values(m.outFeatures * 2, k + 5), R: values(4, k + 9) }])),
    };
    const o = offer('fedsb', 'global', state);
    const model = await startModel(o, base, decodeOfferedState(o.state));
    try {
      for (const m of SHAPES) expect(await model.modules().get(m.path)!.readFactors('all')).toEqual(state.factors.get(m.path));
    } finally {
      model.dispose();
    }
  });

  it('refuses a global start without a state, and a state naming a module the plan does not adapt', async () => {
    await expect(startModel(offer('fedsb', 'global', null), base, null)).rejects.toThrow(/FL_ERR_ADAPTER_LAYOUT: round 2: the plan starts from the global state, but the offer carries none/);
    const stray: Adapter = { layout: { variant: 'lora', modules: [{ path: 'layers.7', outFeatures: 12, inFeatures: 64, rank: 1, alpha: 1 }] }, factors: new Map([['layers.7', { A: values(64, 1), B: values(12, 2) }]]) };
    await expect(startModel(offer('lora', 'fresh', stray), base, stray)).rejects.toThrow(/FL_ERR_ADAPTER_LAYOUT: .*'layers\.7', which the plan does not adapt/);
  });
});
