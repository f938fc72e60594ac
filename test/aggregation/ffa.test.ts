/** FFA-LoRA: A from the seed, B averaged exactly, differing A refused by hash. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ffaFrozenA, FfaStrategy } from '../../aggregation/ffa.js';
import { sha256OfFloat32 } from '../../aggregation/frozen-hash.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';
import { isFedloraError } from '../../shared/errors.js';
import { clientUpdate, denseDelta, float32Tolerance, moduleSpec, referenceSum, relativeDifference } from './fixtures.js';

const ffa = new FfaStrategy();

describe('ffa', () => {
  it('init derives A from the job seed and module path (same seed, same bytes), B = 0', () => {
    const spec = { modules: [moduleSpec('model.layers.0.self_attn.q_proj', 8, 16, 4), moduleSpec('model.layers.0.self_attn.v_proj', 8, 16, 4)] };
    const a = ffa.init(spec, 'job-1');
    const b = ffa.init(spec, 'job-1');
    const c = ffa.init(spec, 'job-2');
    for (const m of spec.modules) {
      expect(sha256OfFloat32(a.adapter!.factors.get(m.path)!.A!)).toBe(sha256OfFloat32(b.adapter!.factors.get(m.path)!.A!));
      expect(sha256OfFloat32(a.adapter!.factors.get(m.path)!.A!)).not.toBe(sha256OfFloat32(c.adapter!.factors.get(m.path)!.A!));
      expect(a.adapter!.factors.get(m.path)!.A).toEqual(ffaFrozenA('job-1', m));
      expect(a.adapter!.factors.get(m.path)!.B!.every((v) => v === 0)).toBe(true);
    }
    // Two modules of one job get different A.
    expect(a.adapter!.factors.get(spec.modules[0]!.path)!.A).not.toEqual(a.adapter!.factors.get(spec.modules[1]!.path)!.A);
    expect(a.adapter!.layout.variant).toBe('ffa');
    expect(ffa.plan(a, [{ id: 'x', rank: 2 }])[0]).toMatchObject({ trainable: ['B'], variant: 'ffa', start: 'global' });
  });

  it('averages B (hand-computed) and keeps A', () => {
    const state = ffa.init({ modules: [moduleSpec('p', 2, 3, 1, 1)] }, 'hand');
    const A = state.adapter!.factors.get('p')!.A!;
    const u = (n: number, B: number[], withA: boolean): ClientUpdate => ({
      source: `n${n}`,
      numExamples: n,
      adapter: { layout: state.adapter!.layout, factors: new Map([['p', withA ? { A, B: Float32Array.from(B) } : { B: Float32Array.from(B) }]]) },
    });
    const round = ffa.begin(state);
    round.add(u(1, [4, 8], true));
    round.add(u(3, [0, 4], false)); // B only: what FFA clients send
    const f = round.finish().aggregate.factors.get('p')!;
    expect(Array.from(f.B!)).toEqual([1, 5]);
    expect(f.A).toEqual(A);
  });

  it('is exact for random shapes, alphas and weights (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 1, max: 9 }),
          n: fc.integer({ min: 1, max: 9 }),
          rank: fc.integer({ min: 1, max: 5 }),
          clients: fc.array(fc.record({ alpha: fc.integer({ min: 1, max: 64 }), n: fc.integer({ min: 1, max: 10_000 }) }), { minLength: 1, maxLength: 6 }),
          seed: fc.string(),
        }),
        ({ m, n, rank, clients, seed }) => {
          const state = ffa.init({ modules: [moduleSpec('p', m, n, rank)] }, seed);
          const updates = clients.map((c, k) => {
            const u = clientUpdate(ffa, state, `${seed}/${k}`, c.n);
            return { ...u, adapter: { ...u.adapter, layout: { ...u.adapter.layout, modules: u.adapter.layout.modules.map((x) => ({ ...x, alpha: c.alpha })) } } };
          });
          const round = ffa.begin(state);
          for (const u of updates) round.add(u);
          const { aggregate } = round.finish();
          expect(relativeDifference(denseDelta(aggregate, 'p'), referenceSum(updates, 'p'))).toBeLessThanOrEqual(float32Tolerance(updates, 'p'));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses an update whose A differs, naming the tensor and the source, and keeps the sum', () => {
    const state = ffa.init({ modules: [moduleSpec('model.layers.2.self_attn.v_proj', 4, 4, 2)] }, 'seed');
    const good = clientUpdate(ffa, state, 'good', 1);
    const other = ffa.init({ modules: [moduleSpec('model.layers.2.self_attn.v_proj', 4, 4, 2)] }, 'another seed');
    const bad: ClientUpdate = {
      ...clientUpdate(ffa, state, 'bad', 1),
      source: 'clients/bad',
      adapter: { ...good.adapter, factors: new Map([['model.layers.2.self_attn.v_proj', { A: other.adapter!.factors.get('model.layers.2.self_attn.v_proj')!.A, B: new Float32Array(8) }]]) },
    };
    const round = ffa.begin(state);
    round.add(good);
    try {
      round.add(bad);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_FROZEN_MISMATCH')).toBe(true);
      expect(String(e)).toContain('clients/bad: base_model.model.model.layers.2.self_attn.v_proj.lora_A.weight differs from the global frozen A');
    }
    expect(round.finish().aggregate.factors.get('model.layers.2.self_attn.v_proj')!.B).toEqual(good.adapter.factors.get('model.layers.2.self_attn.v_proj')!.B);
  });

  it('without a global state the first update must carry A', () => {
    const state = ffa.init({ modules: [moduleSpec('p', 2, 2, 1)] }, 's');
    const u = clientUpdate(ffa, state, 'x', 1);
    const noA: ClientUpdate = { ...u, adapter: { ...u.adapter, factors: new Map([['p', { B: u.adapter.factors.get('p')!.B }]]) } };
    expect(() => ffa.begin(null).add(noA)).toThrow(/lora_A.weight is missing/);
  });
});
