/** Fed-SB's init-phase sum: a float64 sum of the clients' gradients into fedsb's gradient init; bad input refused, sum unchanged. */
import { describe, expect, it } from 'vitest';
import { FedSbGradientSum } from '../../aggregation/fedsb-init.js';
import { fedsbInitFromGradient } from '../../aggregation/fedsb.js';
import type { JobSpec } from '../../aggregation/strategy.js';
import { isFedloraError } from '../../shared/errors.js';

const spec: JobSpec = { modules: [{ path: 'a', outFeatures: 5, inFeatures: 4, rank: 2, alpha: 2 }, { path: 'b', outFeatures: 3, inFeatures: 6, rank: 2, alpha: 2 }] };

function gradients(seed: number): Map<string, Float32Array> {
  let x = seed;
  const next = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  return new Map(spec.modules.map((m) => [m.path, Float32Array.from({ length: m.outFeatures * m.inFeatures }, next)]));
}

const update = (g: Map<string, Float32Array>, source: string) => ({ adapter: { layout: { variant: 'fedsb' as const, modules: spec.modules }, factors: new Map() }, numExamples: 10, source, gradients: g });

describe('FedSbGradientSum', () => {
  it('finishes with fedsbInitFromGradient of the float64 sum of the clients\' gradients', () => {
    const parts = [gradients(1), gradients(2), gradients(3)];
    const sum = new FedSbGradientSum(spec, '9', 0.01);
    parts.forEach((g, k) => sum.add(update(g, `c${k}`)));
    const got = sum.finish();
    const total = new Map(spec.modules.map((m) => [m.path, Float32Array.from(parts[0]!.get(m.path)!, (_, i) => parts.reduce((s, p) => s + p.get(m.path)![i]!, 0))]));
    const want = fedsbInitFromGradient(spec, '9', total, 0.01).state.adapter!;
    expect(got.report.clients).toBe(3);
    expect(got.report.totalExamples).toBe(30);
    for (const m of spec.modules) for (const f of ['A', 'B', 'R'] as const) expect(got.state.adapter!.factors.get(m.path)![f]).toEqual(want.factors.get(m.path)![f]);
  });

  it('refuses a missing module, a wrong size, NaN or an unknown module, leaving the sum unchanged', () => {
    const sum = new FedSbGradientSum(spec, '9', 0.01);
    const good = gradients(4);
    const bad = [
      new Map([['a', good.get('a')!]]),
      new Map([['a', good.get('a')!], ['b', new Float32Array(3)]]),
      new Map([['a', good.get('a')!], ['b', Float32Array.from(good.get('b')!, (v, i) => (i === 2 ? NaN : v))]]),
      new Map([...good, ['c', new Float32Array(1)]]),
    ];
    const codes = bad.map((g) => {
      try {
        sum.add(update(g, 'bad'));
        return 'none';
      } catch (e) {
        return isFedloraError(e) ? e.code : 'other';
      }
    });
    expect(codes).toEqual(['FL_ERR_AGGREGATION_INPUT', 'FL_ERR_SHAPE_MISMATCH', 'FL_ERR_UPDATE_NOT_FINITE', 'FL_ERR_AGGREGATION_INPUT']);
    expect(sum.count).toBe(0);
    sum.add(update(good, 'good'));
    const want = fedsbInitFromGradient(spec, '9', good, 0.01).state.adapter!;
    expect(sum.finish().state.adapter!.factors.get('b')!.R).toEqual(want.factors.get('b')!.R);
  });

  it('refuses finish() without updates', () => {
    expect(() => new FedSbGradientSum(spec, '9', 0.01).finish()).toThrow(/FL_ERR_NO_UPDATES|no client sent/);
  });
});
