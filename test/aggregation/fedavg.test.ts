/** FedAvg of factors (FedIT): hand-computed cases, zero-padding, and the aggregation-noise figure. */
import { describe, expect, it } from 'vitest';
import { FedAvgStrategy } from '../../aggregation/fedavg.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';
import type { AdapterModule } from '../../shared/adapter.js';
import { clientUpdate, denseDelta, frobenius, moduleSpec, referenceSum } from './fixtures.js';

const P = 'layer.q';

function update(source: string, n: number, module: AdapterModule, A: number[], B: number[]): ClientUpdate {
  return { source, numExamples: n, adapter: { layout: { variant: 'lora', modules: [module] }, factors: new Map([[P, { A: Float32Array.from(A), B: Float32Array.from(B) }]]) } };
}

describe('fedavg', () => {
  it('averages A and B with example weights (hand-computed), and reports the noise exactly', () => {
    // m = n = 2, r = 1, s = 1. Client 1: B A = e1 e1^T; client 2 (weight 3): B A = e2 e2^T.
    const mod = moduleSpec(P, 2, 2, 1, 1);
    const round = new FedAvgStrategy({ noise: 'exact' }).begin(null);
    round.add(update('c1', 1, mod, [1, 0], [1, 0]));
    round.add(update('c2', 3, mod, [0, 1], [0, 1]));
    const { aggregate, report } = round.finish();
    const f = aggregate.factors.get(P)!;
    expect(Array.from(f.A!)).toEqual([0.25, 0.75]);
    expect(Array.from(f.B!)).toEqual([0.25, 0.75]);
    // B_avg A_avg = [[1/16, 3/16], [3/16, 9/16]]; M = diag(1/4, 3/4);
    // gap = [[-3/16, 3/16], [3/16, -3/16]]: ||gap|| = 3/8; ||M|| = sqrt(10)/4; ratio = 3 / (2 sqrt(10)).
    expect(report.noise!.method).toBe('exact');
    expect(report.noise!.overall).toBeCloseTo(3 / (2 * Math.sqrt(10)), 12);
    expect(report.noise!.perModule[P]).toBeCloseTo(3 / (2 * Math.sqrt(10)), 12);
    expect(report.totalExamples).toBe(4);
  });

  it('zero-pads unequal ranks: A_k gains zero rows, B_k zero columns (hand-computed)', () => {
    const round = new FedAvgStrategy({ noise: 'off' }).begin(null);
    // rank 1 (alpha 1) then rank 2 (alpha 2): both s = 1. m = 2, n = 3.
    round.add(update('r1', 1, moduleSpec(P, 2, 3, 1, 1), [1, 2, 3], [1, 1]));
    round.add(update('r2', 1, moduleSpec(P, 2, 3, 2, 2), [4, 4, 4, 2, 2, 2], [2, 0, 0, 2]));
    const { aggregate, report } = round.finish();
    expect(aggregate.layout.modules[0]).toMatchObject({ rank: 2, alpha: 2 });
    const f = aggregate.factors.get(P)!;
    expect(Array.from(f.A!)).toEqual([2.5, 3, 3.5, 1, 1, 1]);
    expect(Array.from(f.B!)).toEqual([1.5, 0, 0.5, 1]);
    expect(report.noise).toBeUndefined();
  });

  it('refuses a NaN in a padded (smaller-rank) update without changing the sum', () => {
    const round = new FedAvgStrategy({ noise: 'off' }).begin(null);
    round.add(update('r2', 1, moduleSpec(P, 2, 3, 2, 2), [4, 4, 4, 2, 2, 2], [2, 0, 0, 2]));
    expect(() => round.add(update('nan', 1, moduleSpec(P, 2, 3, 1, 1), [1, Number.NaN, 3], [1, 1]))).toThrow(/lora_A.weight holds NaN or Infinity/);
    round.add(update('r1', 1, moduleSpec(P, 2, 3, 1, 1), [1, 2, 3], [1, 1]));
    const f = round.finish().aggregate.factors.get(P)!;
    expect(Array.from(f.A!)).toEqual([2.5, 3, 3.5, 1, 1, 1]);
    expect(Array.from(f.B!)).toEqual([1.5, 0, 0.5, 1]);
  });

  it('folds s_k / s into B when alphas differ, so the average of s_k B_k is kept', () => {
    const round = new FedAvgStrategy({ noise: 'off' }).begin(null);
    round.add(update('s1', 1, moduleSpec(P, 1, 1, 1, 1), [1], [1])); // s = 1: the output's scaling
    round.add(update('s4', 1, moduleSpec(P, 1, 1, 1, 4), [1], [1])); // s = 4
    const f = round.finish().aggregate.factors.get(P)!;
    expect(Array.from(f.B!)).toEqual([2.5]); // (1 * 1 + 1 * 4) / 2
  });

  it('exact noise figure equals the dense float64 computation on random heterogeneous updates', () => {
    const strategy = new FedAvgStrategy({ noise: 'exact' });
    const modules = [moduleSpec('m.a', 9, 7, 3), moduleSpec('m.b', 5, 11, 2, 3)];
    const state = strategy.init({ modules }, 'noise');
    const updates = [clientUpdate(strategy, state, '1', 3, 3), clientUpdate(strategy, state, '2', 5, 2), clientUpdate(strategy, state, '3', 1, 1)];
    const round = strategy.begin(state);
    for (const u of updates) round.add(u);
    const { aggregate, report } = round.finish();
    let gap = 0;
    let ref = 0;
    for (const m of modules) {
      const avg = denseDelta(aggregate, m.path);
      const M = referenceSum(updates, m.path);
      const d = avg.map((v, i) => v - M[i]!);
      const ratio = frobenius(d) / frobenius(M);
      // Gram traces vs dense: both float64, summed in different orders: 1e-9 relative is ample.
      expect(report.noise!.perModule[m.path]).toBeCloseTo(ratio, 9);
      gap += frobenius(d) ** 2;
      ref += frobenius(M) ** 2;
    }
    expect(report.noise!.overall).toBeCloseTo(Math.sqrt(gap / ref), 9);
    expect(report.noise!.overall).toBeGreaterThan(0.1); // averaging factors really is inexact here
  });

  it('the streaming CountSketch estimates the same figure (seeded; within 15% at q = 128)', () => {
    const modules = [moduleSpec('m.a', 300, 200, 4), moduleSpec('m.b', 200, 300, 4)];
    for (const seed of ['s1', 's2', 's3']) {
      const [exact, sketch] = (['exact', 'sketch'] as const).map((noise) => {
        const strategy = new FedAvgStrategy({ noise, sketchColumns: 128 });
        const state = strategy.init({ modules }, seed);
        const round = strategy.begin(state);
        for (const k of ['1', '2', '3', '4']) round.add(clientUpdate(strategy, state, k, Number(k)));
        return round.finish().report.noise!;
      });
      // Each squared norm has relative variance <= ~4/q (sd 18%, 9% on the norm); the gap and the
      // reference share T and S, so their ratio is tighter: measured within 5% on these seeds.
      expect(sketch!.method).toBe('sketch');
      expect(Math.abs(sketch!.overall / exact!.overall - 1)).toBeLessThan(0.15);
    }
  });

  it('with equal factors on every client the noise is zero', () => {
    const strategy = new FedAvgStrategy({ noise: 'exact' });
    const state = strategy.init({ modules: [moduleSpec('m', 4, 4, 2)] }, 'same');
    const u = clientUpdate(strategy, state, 'x', 1);
    const round = strategy.begin(state);
    round.add(u);
    round.add({ ...u, numExamples: 7, source: 'y' });
    expect(round.finish().report.noise!.overall).toBeLessThan(1e-7);
  });

  it('init gives A Kaiming-uniform from the seed and B = 0, so dW starts at zero', () => {
    const strategy = new FedAvgStrategy();
    const a = strategy.init({ modules: [moduleSpec('m', 4, 16, 2)] }, 's');
    const b = strategy.init({ modules: [moduleSpec('m', 4, 16, 2)] }, 's');
    expect(a.adapter!.factors.get('m')!.A).toEqual(b.adapter!.factors.get('m')!.A);
    expect(Math.max(...a.adapter!.factors.get('m')!.A!.map(Math.abs))).toBeLessThanOrEqual(0.25);
    expect(a.adapter!.factors.get('m')!.B!.every((v) => v === 0)).toBe(true);
  });
});
