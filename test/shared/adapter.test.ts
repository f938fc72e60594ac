import fc from 'fast-check';
import { Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import {
  adapterFromTensors,
  adapterToTensors,
  compareModulePaths,
  foldFedSbAdapter,
  foldRIntoB,
  parsePeftTensorName,
  peftTensorNames,
  scaling,
  validateAdapter,
  validateLayout,
  type Adapter,
  type AdapterModule,
} from '../../shared/adapter.js';
import { makeTensor } from '../../shared/tensor.js';
import { llamaModules, naiveMatmul, randomAdapter, randomFloats, seededRandom } from './fixtures.js';

const q0: AdapterModule = { path: 'model.layers.0.self_attn.q_proj', outFeatures: 4, inFeatures: 3, rank: 2, alpha: 4 };

function expectLayoutError(f: () => unknown, ...fragments: string[]): void {
  expect(f).toThrow(/^FL_ERR_ADAPTER_LAYOUT/);
  for (const fragment of fragments) expect(f).toThrow(fragment);
}

describe('validateLayout / validateAdapter', () => {
  it('accepts a complete adapter of each variant', () => {
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) validateAdapter(randomAdapter(variant, llamaModules(2)));
    expect(scaling(q0)).toBe(2);
  });

  it.each([
    [{ modules: [] }, 'no modules'],
    [{ modules: [q0, q0] }, "'model.layers.0.self_attn.q_proj' appears twice"],
    [{ modules: [{ ...q0, rank: 0 }] }, 'rank must be a positive integer, got 0'],
    [{ modules: [{ ...q0, rank: 1.5 }] }, 'rank must be a positive integer'],
    [{ modules: [{ ...q0, inFeatures: -3 }] }, 'inFeatures must be a positive integer'],
    [{ modules: [{ ...q0, alpha: 0 }] }, 'alpha must be a positive number'],
    [{ modules: [{ ...q0, path: 'model.layers[0]' }] }, "module path 'model.layers[0]'"],
    [{ modules: [q0], baseModelSha256: 'ABC' }, 'baseModelSha256'],
  ])('refuses layout %j', (patch, fragment) => {
    expectLayoutError(() => validateLayout({ variant: 'lora', ...patch }), fragment);
  });

  it('refuses factors of the wrong length, missing factors, unknown modules and R outside fedsb', () => {
    const good = randomAdapter('lora', [q0]);
    const f = good.factors.get(q0.path)!;
    const withFactors = (factors: Adapter['factors'], variant: Adapter['layout']['variant'] = 'lora'): Adapter => ({ layout: { variant, modules: [q0] }, factors });
    expectLayoutError(() => validateAdapter(withFactors(new Map([[q0.path, { ...f, A: new Float32Array(5) }]]))), 'A must hold 2 x 3 = 6', 'got 5');
    expectLayoutError(() => validateAdapter(withFactors(new Map([[q0.path, { A: f.A! }]]))), 'lacks factor B');
    validateAdapter(withFactors(new Map([[q0.path, { B: f.B! }]])), { required: ['B'] });
    expectLayoutError(() => validateAdapter(withFactors(new Map([...good.factors, ['other', f]]))), "module 'other', which the layout does not list");
    expectLayoutError(() => validateAdapter(withFactors(new Map())), 'has no factors');
    expectLayoutError(() => validateAdapter(withFactors(new Map([[q0.path, { ...f, R: new Float32Array(4) }]]))), 'only a fedsb adapter has');
    expectLayoutError(() => validateAdapter(withFactors(new Map([[q0.path, f]]), 'fedsb')), 'lacks factor R');
  });
});

describe('PEFT names', () => {
  it('parses the names peftTensorNames makes, and nothing else', () => {
    const names = peftTensorNames('model.layers.3.mlp.down_proj');
    expect(names.A).toBe('base_model.model.model.layers.3.mlp.down_proj.lora_A.weight');
    expect(parsePeftTensorName(names.A)).toEqual({ path: 'model.layers.3.mlp.down_proj', factor: 'A' });
    expect(parsePeftTensorName(names.B)).toEqual({ path: 'model.layers.3.mlp.down_proj', factor: 'B' });
    expect(parsePeftTensorName(names.R)).toEqual({ path: 'model.layers.3.mlp.down_proj', factor: 'R' });
    expect(parsePeftTensorName('model.layers.3.mlp.down_proj.lora_A.weight')).toBeUndefined();
    expect(parsePeftTensorName('base_model.model.x.lora_A.default.weight')).toBeUndefined();
    expect(parsePeftTensorName('base_model.model.x.lora_magnitude_vector')).toBeUndefined();
  });

  it('orders module paths naturally', () => {
    const paths = ['model.layers.10.q', 'model.layers.2.v', 'model.layers.2.q', 'model.embed', 'model.layers.1.q'];
    expect([...paths].sort(compareModulePaths)).toEqual(['model.embed', 'model.layers.1.q', 'model.layers.2.q', 'model.layers.2.v', 'model.layers.10.q']);
  });
});

describe('adapter <-> tensors', () => {
  it('round trips every variant with the shapes PEFT uses', () => {
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
      const adapter = randomAdapter(variant, llamaModules(2, { rank: 3 }), 4, { baseModelSha256: 'ef'.repeat(32) });
      const tensors = adapterToTensors(adapter);
      const a = tensors.find((t) => t.name === peftTensorNames('model.layers.1.self_attn.v_proj').A)!;
      expect(a.shape).toEqual([3, 8]);
      expect(tensors.find((t) => t.name === peftTensorNames('model.layers.1.self_attn.v_proj').B)!.shape).toEqual([4, 3]);
      expect(tensors.filter((t) => t.name.endsWith('fedsb_R.weight')).length).toBe(variant === 'fedsb' ? 4 : 0);
      const back = adapterFromTensors([...tensors].reverse(), { alpha: 4, variant, baseModelSha256: 'ef'.repeat(32) });
      expect(back).toEqual(adapter);
    }
  });

  it('infers fedsb from R tensors and takes alphas per module', () => {
    const adapter = randomAdapter('fedsb', llamaModules(1));
    const back = adapterFromTensors(adapterToTensors(adapter), { alpha: (path, rank) => (path.endsWith('q_proj') ? 2 * rank : 4) });
    expect(back.layout.variant).toBe('fedsb');
    expect(back.layout.modules.map((m) => m.alpha)).toEqual([4, 4]);
  });

  it('property: random shapes and ranks round trip', () => {
    const moduleArb = fc.record({ out: fc.integer({ min: 1, max: 9 }), inp: fc.integer({ min: 1, max: 9 }), rank: fc.integer({ min: 1, max: 5 }) });
    fc.assert(
      fc.property(fc.array(moduleArb, { minLength: 1, maxLength: 6 }), fc.constantFrom('lora', 'ffa', 'fedsb' as const), fc.integer(), (specs, variant, seed) => {
        const modules = specs.map((s, i) => ({ path: `model.layers.${i}.mlp.up_proj`, outFeatures: s.out, inFeatures: s.inp, rank: s.rank, alpha: 2 * s.rank }));
        const adapter = randomAdapter(variant, modules, seed);
        // fedsb is inferred from the R tensors; ffa cannot be told from lora by its tensors, so it is passed.
        const options = variant === 'fedsb' ? {} : { variant };
        expect(adapterFromTensors(adapterToTensors(adapter), { alpha: (_p, r) => 2 * r, ...options })).toEqual(adapter);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses tensors that do not form an adapter, naming the tensor', () => {
    const adapter = randomAdapter('lora', [q0]);
    const [A, B] = adapterToTensors(adapter);
    expectLayoutError(() => adapterFromTensors([A!, B!, makeTensor('lm_head.weight', [2, 2])], { alpha: 1 }), "'lm_head.weight' is not a LoRA weight");
    expectLayoutError(() => adapterFromTensors([A!], { alpha: 1 }), 'lora_B.weight');
    expectLayoutError(() => adapterFromTensors([A!, makeTensor(B!.name, [4, 3])], { alpha: 1 }), B!.name, 'rank 2');
    expectLayoutError(() => adapterFromTensors([makeTensor(A!.name, [6]), B!], { alpha: 1 }), 'must be 2-D');
    expectLayoutError(() => adapterFromTensors([A!, B!, makeTensor(peftTensorNames(q0.path).R, [2, 3])], { alpha: 1 }), 'expected [2, 2]');
  });
});

describe('Fed-SB folding (B\' = B R)', () => {
  it('a hand-computed case', () => {
    // B = [[1, 2], [3, 4]], R = [[0, 1], [1, 0]] swaps B's columns.
    expect([...foldRIntoB(new Float32Array([1, 2, 3, 4]), new Float32Array([0, 1, 1, 0]), 2, 2)]).toEqual([2, 1, 4, 3]);
  });

  it('property: equals ml-matrix B.mmul(R) and a naive float64 product', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 12 }), fc.integer(), (m, r, seed) => {
        const random = seededRandom(seed);
        const B = randomFloats(m * r, random);
        const R = randomFloats(r * r, random);
        const folded = foldRIntoB(B, R, m, r);
        const naive = naiveMatmul(B, R, m, r, r);
        const viaLibrary = Matrix.from1DArray(m, r, Array.from(B)).mmul(Matrix.from1DArray(r, r, Array.from(R))).to1DArray();
        // Sums of r <= 12 products of values in [-1, 1]: |entry| <= 12; float32 rounding of the result
        // adds at most 12 * 2^-24 < 1e-6, float64 differences in summation order are ~1e-15.
        for (let i = 0; i < m * r; i++) {
          expect(Math.abs(folded[i]! - naive[i]!)).toBeLessThan(1e-6);
          expect(Math.abs(folded[i]! - viaLibrary[i]!)).toBeLessThan(1e-6);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('foldFedSbAdapter gives a lora adapter whose s B\' A equals s B R A', () => {
    const adapter = randomAdapter('fedsb', llamaModules(1, { rank: 3 }), 9);
    const folded = foldFedSbAdapter(adapter);
    expect(folded.layout).toEqual({ ...adapter.layout, variant: 'lora' });
    for (const m of adapter.layout.modules) {
      const f = adapter.factors.get(m.path)!;
      const g = folded.factors.get(m.path)!;
      expect(g.R).toBeUndefined();
      expect(g.A).toBe(f.A);
      const BR = Float32Array.from(naiveMatmul(f.B!, f.R!, m.outFeatures, m.rank, m.rank));
      const want = naiveMatmul(BR, f.A!, m.outFeatures, m.rank, m.inFeatures);
      const got = naiveMatmul(g.B!, g.A!, m.outFeatures, m.rank, m.inFeatures);
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5);
    }
    expect(foldFedSbAdapter(folded)).toBe(folded);
    expect(adapterToTensors(adapter, { foldFedSb: true }).some((t) => t.name.includes('fedsb'))).toBe(false);
  });
});
