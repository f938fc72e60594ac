import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fusedRope } from '../../../client/kernels/fused-rope.js';
import { applyRope } from '../../../client/models/llama-rope.js';
import { isFedloraError } from '../../../shared/errors.js';
import { relErr, seeded, weightedGrads } from './reference.js';

/** x [outer, T, d] rotated by angle(t, i) = t * 0.3^i (Hugging Face halves), and the gradient of sum(g * rope(x)), in float64. */
function reference(x: Float64Array, g: Float64Array, outer: number, T: number, d: number): { y: Float64Array; dx: Float64Array; cos: Float32Array; sin: Float32Array } {
  const h = d / 2;
  const cos = new Float32Array(T * h);
  const sin = new Float32Array(T * h);
  for (let t = 0; t < T; t++) for (let i = 0; i < h; i++) [cos[t * h + i], sin[t * h + i]] = [Math.cos(t * 0.3 ** i), Math.sin(t * 0.3 ** i)];
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let t = 0; t < T; t++) {
      const b = (o * T + t) * d;
      for (let i = 0; i < h; i++) {
        const c = cos[t * h + i]!;
        const s = sin[t * h + i]!;
        y[b + i] = x[b + i]! * c - x[b + h + i]! * s;
        y[b + h + i] = x[b + h + i]! * c + x[b + i]! * s;
        // transpose of [[c, -s], [s, c]]
        dx[b + i] = g[b + i]! * c + g[b + h + i]! * s;
        dx[b + h + i] = -g[b + i]! * s + g[b + h + i]! * c;
      }
    }
  }
  return { y, dx, cos, sin };
}

describe('fused rotary embedding (cpu: the op form)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([[[2, 3, 7, 10]], [[1, 9, 64]]])('forward and gradient (rotation by -theta) match float64 (%j)', async (shape) => {
    const [T, d] = shape.slice(-2) as [number, number];
    const outer = shape.slice(0, -2).reduce((a, b) => a * b, 1);
    const x = seeded(shape, 4 + d);
    const g = seeded(shape, 8);
    const want = reference(x.v, g.v, outer, T, d);
    const cos = tf.tensor2d(want.cos, [T, d / 2]);
    const sin = tf.tensor2d(want.sin, [T, d / 2]);
    const y = fusedRope(x.t, cos, sin);
    expect(relErr(await y.data(), want.y)).toBeLessThan(1e-6);
    const [dx] = await weightedGrads((z) => fusedRope(z, cos, sin), [x.t], g.t);
    expect(relErr(dx!, want.dx)).toBeLessThan(1e-6);
    const [dxPlain] = await weightedGrads((z) => applyRope(z, cos, sin), [x.t], g.t);
    expect(relErr(dxPlain!, want.dx)).toBeLessThan(1e-6);
    tf.dispose([x.t, g.t, cos, sin, y]);
  });

  it('refuses tables of another length', () => {
    try {
      fusedRope(tf.zeros([2, 5, 8]), tf.zeros([4, 4]) as tf.Tensor2D, tf.zeros([4, 4]) as tf.Tensor2D);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e) && e.code === 'FL_ERR_SHAPE_MISMATCH').toBe(true);
    }
  });
});
