import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fusedSwiglu, swigluPlain } from '../../../client/kernels/fused-swiglu.js';
import { relErr, seeded, weightedGrads } from './reference.js';

describe('fused SwiGLU (cpu: the op form)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([[[3, 5, 77]], [[2, 1536]]])('forward and both gradients match float64 and central differences (%j)', async (shape) => {
    const g = seeded(shape, 31, 3); // scale 3 reaches both tails of the sigmoid
    const u = seeded(shape, 32);
    const w = seeded(shape, 33);
    const silu = (z: number): number => z / (1 + Math.exp(-z));
    const y = Array.from(g.v, (z, i) => silu(z) * u.v[i]!);
    // d silu / dz by central differences in float64: independent of the analytic form the op uses
    const h = 1e-5;
    const dg = Array.from(g.v, (z, i) => (w.v[i]! * u.v[i]! * (silu(z + h) - silu(z - h))) / (2 * h));
    const du = Array.from(g.v, (z, i) => w.v[i]! * silu(z));
    const out = fusedSwiglu(g.t, u.t);
    expect(relErr(await out.data(), y)).toBeLessThan(1e-6);
    const [gotDg, gotDu] = await weightedGrads(fusedSwiglu, [g.t, u.t], w.t);
    expect(relErr(gotDg!, dg)).toBeLessThan(1e-6);
    expect(relErr(gotDu!, du)).toBeLessThan(1e-6);
    const [plainDg, plainDu] = await weightedGrads(swigluPlain, [g.t, u.t], w.t);
    expect(relErr(plainDg!, dg)).toBeLessThan(1e-6);
    expect(relErr(plainDu!, du)).toBeLessThan(1e-6);
    tf.dispose([g.t, u.t, w.t, out]);
  });

  it('refuses gate and up of different shapes', () => {
    expect(() => fusedSwiglu(tf.zeros([2, 3]), tf.zeros([3, 2]))).toThrow(/one shape/);
  });
});
