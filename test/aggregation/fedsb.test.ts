/** Fed-SB: R averaged exactly, orthonormal fallback init, LoRA-SB gradient init vs numpy's SVD. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FedSbStrategy, fedsbInitFromGradient } from '../../aggregation/fedsb.js';
import { truncatedSvdDense } from '../../aggregation/low-rank.js';
import { SeededRandom } from '../../aggregation/seeded-random.js';
import { isFedloraError } from '../../shared/errors.js';
import { clientUpdate, denseDelta, float32Tolerance, moduleSpec, numpySvd, referenceSum, relativeDifference } from './fixtures.js';

const fedsb = new FedSbStrategy();

/** max |X X^T - I| for X [rows, cols] row-major (rows orthonormal when small). */
function rowOrthonormality(X: Float32Array, rows: number, cols: number): number {
  let worst = 0;
  for (let i = 0; i < rows; i++) for (let j = 0; j < rows; j++) {
    let d = 0;
    for (let c = 0; c < cols; c++) d += X[i * cols + c]! * X[j * cols + c]!;
    worst = Math.max(worst, Math.abs(d - (i === j ? 1 : 0)));
  }
  return worst;
}

function transpose(X: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(X.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = X[i * cols + j]!;
  return out;
}

describe('fedsb', () => {
  it('fallback init: A rows and B columns orthonormal, R0 = 0, alpha = r, seeded', () => {
    const spec = { modules: [moduleSpec('p', 12, 9, 4, 99)] };
    const state = fedsb.init(spec, 'seed');
    const f = state.adapter!.factors.get('p')!;
    expect(state.adapter!.layout.modules[0]).toMatchObject({ rank: 4, alpha: 4 });
    // float32 storage of orthonormal float64 vectors: entries off by ~6e-8, products by ~1e-7.
    expect(rowOrthonormality(f.A!, 4, 9)).toBeLessThan(1e-6);
    expect(rowOrthonormality(transpose(f.B!, 12, 4), 4, 12)).toBeLessThan(1e-6);
    expect(f.R!.every((v) => v === 0)).toBe(true);
    expect(fedsb.init(spec, 'seed').adapter!.factors.get('p')!.A).toEqual(f.A);
    expect(fedsb.plan(state, [{ id: 'c' }])[0]).toMatchObject({ trainable: ['R'], variant: 'fedsb', start: 'global' });
  });

  it('refuses a rank above min(m, n), in both inits, naming the module (its own rule, not validate-update\'s)', () => {
    const spec = { modules: [moduleSpec('p', 3, 8, 4)] };
    const attempts = [
      () => fedsb.init(spec, 's'),
      () => fedsbInitFromGradient(spec, 's', new Map([['p', new Float32Array(3 * 8).fill(1)]]), 0.01),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
        expect.unreachable();
      } catch (e) {
        expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
        expect((e as Error).message).toContain("fedsb: module 'p': rank 4 exceeds min(m, n) = 3");
      }
    }
    // rank = min(m, n) is the largest that fits
    expect(() => fedsb.init({ modules: [moduleSpec('p', 3, 8, 3)] }, 's')).not.toThrow();
  });

  it('averages R (hand-computed)', () => {
    const state = fedsb.init({ modules: [moduleSpec('p', 3, 3, 2)] }, 'h');
    const u = (n: number, R: number[]) => ({ source: `c${n}`, numExamples: n, adapter: { layout: state.adapter!.layout, factors: new Map([['p', { R: Float32Array.from(R) }]]) } });
    const round = fedsb.begin(state);
    round.add(u(1, [1, 2, 3, 4]));
    round.add(u(3, [5, 2, 3, 0]));
    expect(Array.from(round.finish().aggregate.factors.get('p')!.R!)).toEqual([4, 2, 3, 1]);
  });

  it('is exact for random shapes, alphas and weights (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 2, max: 9 }),
          n: fc.integer({ min: 2, max: 9 }),
          clients: fc.array(fc.record({ alpha: fc.integer({ min: 1, max: 64 }), n: fc.integer({ min: 1, max: 10_000 }) }), { minLength: 1, maxLength: 6 }),
          seed: fc.string(),
        }),
        ({ m, n, clients, seed }) => {
          const rank = Math.min(m, n, 3);
          const state = fedsb.init({ modules: [moduleSpec('p', m, n, rank)] }, seed);
          const updates = clients.map((c, k) => {
            const u = clientUpdate(fedsb, state, `${seed}/${k}`, c.n);
            return { ...u, adapter: { ...u.adapter, layout: { ...u.adapter.layout, modules: u.adapter.layout.modules.map((x) => ({ ...x, alpha: c.alpha })) } } };
          });
          const round = fedsb.begin(state);
          for (const u of updates) round.add(u);
          expect(relativeDifference(denseDelta(round.finish().aggregate, 'p'), referenceSum(updates, 'p'))).toBeLessThanOrEqual(float32Tolerance(updates, 'p'));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('gradient init: s B R0 A is the best rank-r approximation of -eta sign(G) (vs numpy)', () => {
    const m = 10;
    const n = 8;
    const rng = SeededRandom.fromSeed('test/fedsb', 'gradient');
    const G = rng.uniformArray(m * n, 1);
    G[3] = 0; // sign(0) = 0
    const eta = 0.01;
    const { state, svdMethod } = fedsbInitFromGradient({ modules: [moduleSpec('p', m, n, 3, 7)] }, 'seed', new Map([['p', G]]), eta);
    expect(svdMethod.p).toBe('exact');
    expect(state.adapter!.layout.modules[0]).toMatchObject({ alpha: 3 });
    const signed = Array.from(G, (g) => (g > 0 ? -eta : g < 0 ? eta : 0));
    const ref = numpySvd(signed, m, n, 3);
    // float32 factors of a float64 SVD: ~1e-7 relative.
    expect(relativeDifference(denseDelta(state.adapter!, 'p'), ref.best)).toBeLessThan(1e-5);
    const R = state.adapter!.factors.get('p')!.R!;
    expect([R[0], R[4], R[8]].map(Number)).toEqual(ref.singular.slice(0, 3).map((v) => Math.fround(v)));
    expect(rowOrthonormality(state.adapter!.factors.get('p')!.A!, 3, n)).toBeLessThan(1e-6);
  });

  it('randomized truncated SVD (large modules) finds the leading singular values of a sign gradient', () => {
    // A rank-3 signal plus noise, signed: the leading part dominates, as in real gradients.
    const m = 90;
    const n = 70;
    const rng = SeededRandom.fromSeed('test/fedsb', 'randomized');
    const u = rng.uniformArray(m * 3, 1);
    const v = rng.uniformArray(n * 3, 1);
    const signed = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let g = 0.3 * rng.nextSymmetric(1);
      for (let c = 0; c < 3; c++) g += u[i * 3 + c]! * v[j * 3 + c]!;
      signed[i * n + j] = g > 0 ? -1 : 1;
    }
    const svd = truncatedSvdDense(signed, m, n, 3, SeededRandom.fromSeed('t', 'r'), 20);
    expect(svd.method).toBe('randomized');
    const ref = numpySvd(signed, m, n, 3);
    // Subspace iteration with 6 passes on a spectrum with a gap: top values to 1e-6 relative.
    for (let c = 0; c < 3; c++) expect(Math.abs(svd.S[c]! / ref.singular[c]! - 1)).toBeLessThan(1e-6);
  });

  it('refuses a gradient of the wrong size, NaN, or eta <= 0', () => {
    const spec = { modules: [moduleSpec('p', 3, 3, 1)] };
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'none';
    };
    expect(code(() => fedsbInitFromGradient(spec, 's', new Map([['p', new Float32Array(8)]]), 1))).toBe('FL_ERR_SHAPE_MISMATCH');
    expect(code(() => fedsbInitFromGradient(spec, 's', new Map([['p', new Float32Array(9).fill(Number.NaN)]]), 1))).toBe('FL_ERR_INVALID_ARGUMENT');
    expect(code(() => fedsbInitFromGradient(spec, 's', new Map([['p', new Float32Array(9)]]), 0))).toBe('FL_ERR_INVALID_ARGUMENT');
    expect(code(() => fedsbInitFromGradient(spec, 's', new Map(), 1))).toBe('FL_ERR_INVALID_ARGUMENT');
  });
});
