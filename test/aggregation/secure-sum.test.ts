/**
 * Secure aggregation applied to the sum strategies: the real protocol (privacy/secagg) over real
 * client updates, checked against a naive float64 average of the survivors' deltas computed from
 * the adapters directly (nothing shared with aggregation/secure-sum.ts's flattening).
 */
import { describe, expect, it } from 'vitest';
import { createStrategy } from '../../aggregation/registry.js';
import { fedsbInitFromGradient } from '../../aggregation/fedsb.js';
import { aggregateSecureSum, gradientSumInput, gradientsFromSum, requireSecureSumStrategy, secureSumInput, secureSumLength } from '../../aggregation/secure-sum.js';
import type { FactorName } from '../../aggregation/strategy.js';
import { secAggConfig } from '../../privacy/secagg/config.js';
import { runInProcess } from '../../privacy/secagg/in-process.js';
import { seededTestSource } from '../../privacy/random.js';
import { isFedloraError } from '../../shared/errors.js';
import { clientUpdate, moduleSpec } from './fixtures.js';

const modules = [moduleSpec('model.layers.0.self_attn.q_proj', 12, 10, 3), moduleSpec('model.layers.0.self_attn.v_proj', 8, 10, 3)];
const clients = Array.from({ length: 8 }, (_, i) => `client-${i}`);

describe.each(['fedavg', 'ffa', 'fedsb'] as const)('secure sum with %s', (name) => {
  it('the next state is global + (sum of the survivors\' deltas) / survivors, within the quantisation bound', () => {
    const strategy = createStrategy(name);
    const state = strategy.init({ modules }, 'job-seed');
    const updates = new Map(clients.map((c, i) => [c, clientUpdate(strategy, state, c, 10 + i)]));
    const config = secAggConfig({ context: 'job/round-1', clients, vectorLength: secureSumLength(strategy, state), graphSeed: 'g' });
    const inputs = new Map(clients.map((c) => [c, secureSumInput(strategy, state, updates.get(c)!).vector]));
    const { result } = runInProcess(config, inputs, { maskedInput: ['client-5'] });
    const out = aggregateSecureSum(strategy, state, result);
    const survivors = clients.filter((c) => c !== 'client-5');
    expect(out.report.secureAggregation).toMatchObject({ secure: true, survivors: 7, droppedClients: 1, badShares: 0 });

    // Tolerance: the protocol's bound on the sum / 7, plus float32 rounding of the stored state (|values| < 4: 4 * 2^-24).
    const tolerance = result.errorBound / 7 + 4 * 2 ** -24;
    let checked = 0;
    for (const m of modules) {
      const global = state.adapter!.factors.get(m.path)!;
      const next = out.state.adapter!.factors.get(m.path)!;
      for (const f of strategy.trainable as readonly FactorName[]) {
        const g = global[f]!;
        for (let i = 0; i < g.length; i++) {
          let sum = 0;
          for (const c of survivors) sum += updates.get(c)!.adapter.factors.get(m.path)![f]![i]! - g[i]!;
          expect(Math.abs(next[f]![i]! - (g[i]! + sum / 7))).toBeLessThan(tolerance);
          checked++;
        }
      }
    }
    expect(checked).toBe(secureSumLength(strategy, state));
  });

  it('a client input clipped to C has norm at most C', () => {
    const strategy = createStrategy(name);
    const state = strategy.init({ modules }, 'job-seed');
    const { vector, norm } = secureSumInput(strategy, state, clientUpdate(strategy, state, 'x', 5), { clipNorm: 0.25 });
    expect(norm).toBeGreaterThan(0.25);
    expect(Math.hypot(...vector)).toBeLessThan(0.25 * (1 + 1e-6));
  });
});

describe('secure sum with distributed DP', () => {
  it('the unmasked sum carries N(0, (z C)^2) per coordinate when every client adds its share (h = n)', () => {
    const strategy = createStrategy('fedsb');
    const big = [moduleSpec('model.layers.0.mlp.up_proj', 64, 64, 16), moduleSpec('model.layers.0.mlp.down_proj', 64, 64, 16)]; // 512 values of R
    const state = strategy.init({ modules: big }, 'job-seed');
    const n = 12;
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    const z = 1.2;
    const C = 0.05;
    const random = seededTestSource('dp-shares');
    const clipped = new Map<string, Float64Array>();
    const noisy = new Map<string, Float64Array>();
    for (const c of ids) {
      const update = clientUpdate(strategy, state, c, 10);
      clipped.set(c, secureSumInput(strategy, state, update, { clipNorm: C }).vector);
      noisy.set(c, secureSumInput(strategy, state, update, { clipNorm: C, noise: { noiseMultiplier: z, minHonestClients: n, random } }).vector);
    }
    const config = secAggConfig({ context: 'job/dp', clients: ids, vectorLength: secureSumLength(strategy, state), graphSeed: 'g', clipRange: 1, quantRange: 2 ** 24 });
    const { result } = runInProcess(config, noisy);
    const L = result.sum.length;
    let sq = 0;
    for (let i = 0; i < L; i++) {
      let exact = 0;
      for (const c of ids) exact += clipped.get(c)![i]!;
      sq += (result.sum[i]! - exact) ** 2;
    }
    // Sample variance of 512 normals: relative std sqrt(2/512) = 6.25 %; 5 sigma = 31 %. The
    // quantisation error (< 12 * 2 / 2^24 = 1.4e-6) is negligible next to z C = 0.06.
    expect(Math.abs(sq / L / (z * C) ** 2 - 1)).toBeLessThan(5 * Math.sqrt(2 / L));
  });
});

describe('secure sum refusals and Fed-SB\'s gradient', () => {
  it('flora is refused with FL_ERR_NOT_A_SUM and a reason', () => {
    const flora = createStrategy('flora');
    try {
      requireSecureSumStrategy(flora);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_NOT_A_SUM')).toBe(true);
      expect(String(e)).toMatch(/cannot protect 'flora'.*not a sum/);
    }
  });

  it('distributed noise needs a clip norm', () => {
    const strategy = createStrategy('ffa');
    const state = strategy.init({ modules }, 's');
    expect(() => secureSumInput(strategy, state, clientUpdate(strategy, state, 'x', 5), { noise: { noiseMultiplier: 1, minHonestClients: 4 } })).toThrow(/needs clipNorm/);
  });

  it('the securely summed initial gradient gives the same Fed-SB initialisation as the plain sum', () => {
    const random = seededTestSource('gradients');
    const perClient = new Map(
      clients.map((c) => [c, new Map(modules.map((m) => [m.path, Float32Array.from({ length: m.outFeatures * m.inFeatures }, () => Math.round(((random.nextUint32() / 2 ** 32) * 2 - 1) * 2 ** 10) / 2 ** 10)]))]),
    );
    const plain = new Map(modules.map((m) => [m.path, new Float32Array(m.outFeatures * m.inFeatures)]));
    for (const g of perClient.values()) for (const [p, v] of g) v.forEach((x, i) => (plain.get(p)![i]! += x));
    const inputs = new Map(clients.map((c) => [c, gradientSumInput(modules, perClient.get(c)!)]));
    const config = secAggConfig({ context: 'job/fedsb-gradient', clients, vectorLength: inputs.get('client-0')!.length, graphSeed: 'g' });
    const { result } = runInProcess(config, inputs);
    const summed = gradientsFromSum(modules, result.sum);
    // Grid values (multiples of 2^-10, quantisation step 2^-18): the secure sum is exact.
    expect(summed).toEqual(plain);
    const a = fedsbInitFromGradient({ modules }, 'seed', summed, 0.01).state.adapter!;
    const b = fedsbInitFromGradient({ modules }, 'seed', plain, 0.01).state.adapter!;
    expect(a.factors).toEqual(b.factors);
  });
});
