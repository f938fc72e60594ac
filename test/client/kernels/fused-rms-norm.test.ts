import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fusedRmsNorm, rmsNormPlain } from '../../../client/kernels/fused-rms-norm.js';
import { relErr, seeded, weightedGrads } from './reference.js';

/** y, dx and dw of sum(g * RMSNorm(x) w) in float64, written out by the chain rule per element. */
function reference(x: Float64Array, w: Float64Array, g: Float64Array, rows: number, n: number, eps: number): { y: Float64Array; dx: Float64Array; dw: Float64Array } {
  const y = new Float64Array(rows * n);
  const dx = new Float64Array(rows * n);
  const dw = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const row = (j: number): number => x[r * n + j]!;
    let ss = 0;
    for (let j = 0; j < n; j++) ss += row(j) ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    // d inv / d x_k = -inv^3 x_k / n
    let dot = 0;
    for (let j = 0; j < n; j++) dot += g[r * n + j]! * w[j]! * row(j);
    for (let j = 0; j < n; j++) {
      y[r * n + j] = w[j]! * row(j) * inv;
      dx[r * n + j] = g[r * n + j]! * w[j]! * inv - (inv ** 3 * row(j) * dot) / n;
      dw[j] += g[r * n + j]! * row(j) * inv;
    }
  }
  return { y, dx, dw };
}

describe('fused RMSNorm (cpu: the op form)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  // 333 columns is not a multiple of the 128-lane workgroup; x of scale 3 and 0.01 (eps matters there)
  it.each([[[2, 5, 333], 3], [[4, 576], 0.01]])('forward, input and weight gradients match float64 (%j, scale %f)', async (shape, std) => {
    const n = shape.at(-1)!;
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const eps = 1e-5;
    const x = seeded(shape, 21 + n, std);
    const w = seeded([n], 2);
    const g = seeded(shape, 9);
    const want = reference(x.v, w.v, g.v, rows, n, eps);
    const before = tf.memory().numTensors;
    const y = fusedRmsNorm(x.t, w.t as tf.Tensor1D, eps);
    expect(y.shape).toEqual(shape);
    expect(relErr(await y.data(), want.y)).toBeLessThan(1e-6);
    // frozen weight: x alone gets a gradient
    const [dx] = await weightedGrads((z) => fusedRmsNorm(z, w.t as tf.Tensor1D, eps), [x.t], g.t);
    expect(relErr(dx!, want.dx)).toBeLessThan(1e-5);
    // trained weight: both
    const [dx2, dw] = await weightedGrads((z, v) => fusedRmsNorm(z, v as tf.Tensor1D, eps, true), [x.t, w.t], g.t);
    expect(relErr(dx2!, want.dx)).toBeLessThan(1e-5);
    expect(relErr(dw!, want.dw)).toBeLessThan(1e-5);
    const [dxPlain, dwPlain] = await weightedGrads((z, v) => rmsNormPlain(z, v as tf.Tensor1D, eps), [x.t, w.t], g.t);
    expect(relErr(dxPlain!, want.dx)).toBeLessThan(1e-5);
    expect(relErr(dwPlain!, want.dw)).toBeLessThan(1e-5);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x.t, w.t, g.t]);
  });

  it('a trainable variable weight gets its gradient without being asked', async () => {
    const x = seeded([3, 8], 1);
    const w = tf.variable(seeded([8], 2).t);
    const { grads } = tf.variableGrads(() => tf.sum(fusedRmsNorm(x.t, w as unknown as tf.Tensor1D, 1e-6)), [w]);
    const got = await grads[w.name]!.data();
    const want = reference(x.v, Float64Array.from(await w.data()), new Float64Array(24).fill(1), 3, 8, 1e-6).dw;
    expect(relErr(got, want)).toBeLessThan(1e-5);
    tf.dispose([x.t, w, grads[w.name]!]);
  });
});
