import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { peftTensorNames } from '../../../shared/adapter.js';
import { LoraDense } from '../../../client/lora/lora-dense.js';
import { extractUpdateOf, layoutOf, loadGlobalInto, trainableVariablesOf } from '../../../client/lora/lora-model.js';
import { testValues } from './reference.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function twoModules(variant: 'lora' | 'ffa' | 'fedsb', seed: number): Map<string, LoraDense> {
  return new Map([
    ['layers.0', new LoraDense({ path: 'layers.0', variant, inFeatures: 6, outFeatures: 4, rank: 2, alpha: 4, weight: testValues(24, 1), seed })],
    ['head', new LoraDense({ path: 'head', variant, inFeatures: 4, outFeatures: 3, rank: 2, alpha: 4, weight: testValues(12, 2), seed: seed + 10 })],
  ]);
}

describe('LoraModel helpers', () => {
  it('layoutOf lists every module with shape, rank and alpha', async () => {
    const mods = twoModules('lora', 0);
    const layout = layoutOf(mods, { baseModelSha256: 'ab' });
    expect(layout).toEqual({
      variant: 'lora',
      modules: [
        { path: 'layers.0', outFeatures: 4, inFeatures: 6, rank: 2, alpha: 4 },
        { path: 'head', outFeatures: 3, inFeatures: 4, rank: 2, alpha: 4 },
      ],
      baseModelSha256: 'ab',
    });
    expect(peftTensorNames('head').A).toBe('base_model.model.head.lora_A.weight');
    for (const m of mods.values()) m.dispose();
  });

  for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
    it(`${variant}: extractUpdate -> loadGlobal into another model round-trips the trainable factors`, async () => {
      const a = twoModules(variant, 0);
      const b = twoModules(variant, 100);
      // make a's trainable factors non-trivial
      for (const m of a.values()) {
        const f = (await m.readFactors('trainable'));
        m.setFactors(Object.fromEntries(Object.entries(f).map(([k, v], i) => [k, testValues(v.length, 7 + i)])));
      }
      const update = await extractUpdateOf(a, layoutOf(a));
      const want = { lora: ['A', 'B'], ffa: ['B'], fedsb: ['R'] }[variant];
      for (const f of update.factors.values()) expect(Object.keys(f).sort()).toEqual(want);
      loadGlobalInto(b, update);
      for (const [path, m] of b) expect(await m.readFactors('trainable')).toEqual(await a.get(path)!.readFactors('trainable'));
      expect(trainableVariablesOf(b)).toHaveLength(want.length * 2);
      for (const m of [...a.values(), ...b.values()]) m.dispose();
    });
  }

  it('refuses an adapter for another module, variant or rank', async () => {
    const mods = twoModules('lora', 0);
    const layout = layoutOf(mods);
    expect(() => loadGlobalInto(mods, { layout, factors: new Map([['layers.9', {}]]) })).toThrow(/FL_ERR_ADAPTER_LAYOUT.*'layers\.9'/);
    expect(() => loadGlobalInto(mods, { layout: { ...layout, variant: 'ffa' }, factors: new Map([['head', {}]]) })).toThrow(/variant is 'ffa'/);
    const wrongRank = { ...layout, modules: layout.modules.map((m) => ({ ...m, rank: 3 })) };
    expect(() => loadGlobalInto(mods, { layout: wrongRank, factors: new Map([['head', {}]]) })).toThrow(/r 3\], the model has \[out 3, in 4, r 2\]/);
    for (const m of mods.values()) m.dispose();
  });
});
