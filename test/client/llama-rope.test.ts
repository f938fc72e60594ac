import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { applyRope, ropeTables } from '../../client/models/llama-rope.js';

describe('rotary embeddings (Hugging Face rotate_half convention)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('has angles p * theta^(-2i/d)', () => {
    const { cos, sin } = ropeTables(4, 10000, 3);
    // d = 4: frequencies 1 and 10000^(-1/2) = 0.01.
    expect(Array.from(cos)).toEqual(Array.from(new Float32Array([1, 1, Math.cos(1), Math.cos(0.01), Math.cos(2), Math.cos(0.02)])));
    expect(Array.from(sin)).toEqual(Array.from(new Float32Array([0, 0, Math.sin(1), Math.sin(0.01), Math.sin(2), Math.sin(0.02)])));
  });

  it('rotates the halves (x1, x2) = ([1, 2], [3, 4]) as hand-computed', async () => {
    const { cos, sin } = ropeTables(4, 10000, 3);
    const out = tf.tidy(() => {
      const x = tf.tensor2d([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]); // positions 0, 1, 2
      return applyRope(x, tf.tensor2d(cos, [3, 2]), tf.tensor2d(sin, [3, 2]));
    });
    const got = (await out.array()) as number[][];
    out.dispose();
    // By hand (python3 math): out = [x1 c - x2 s, x2 c + x1 s] per frequency,
    // e.g. at p = 1: [1 cos 1 - 3 sin 1, 2 cos .01 - 4 sin .01, 3 cos 1 + sin 1, 4 cos .01 + 2 sin .01].
    const want = [
      [1, 2, 3, 4],
      [-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994],
      [-3.1440391170241875, 1.9196053465598233, -0.33914308281574557, 4.039197360052977],
    ];
    // float32 values of magnitude <= 4 with a few roundings: 1e-6 is ~4 ulps.
    for (let p = 0; p < 3; p++) for (let j = 0; j < 4; j++) expect(Math.abs(got[p]![j]! - want[p]![j]!)).toBeLessThan(1e-6);
  });

  it('preserves the norm of each (x_i, x_{i+d/2}) pair and makes q.k depend only on the offset', async () => {
    const d = 8;
    const { cos, sin } = ropeTables(d, 500, 12);
    const q = [0.3, -1.2, 0.5, 2, -0.7, 0.1, 1.4, -0.4];
    const k = [1.1, 0.2, -0.9, 0.6, 0.3, -1.5, 0.8, 0.05];
    const rows = (v: number[]): number[][] => Array.from({ length: 12 }, () => v);
    const [tq, tk] = tf.tidy(() => {
      const c = tf.tensor2d(cos, [12, d / 2]);
      const s = tf.tensor2d(sin, [12, d / 2]);
      return [applyRope(tf.tensor2d(rows(q)), c, s), applyRope(tf.tensor2d(rows(k)), c, s)];
    });
    const [rq, rk] = [await tq!.array() as number[][], await tk!.array() as number[][]];
    tf.dispose([tq!, tk!]);
    const dot = (a: number[], b: number[]): number => a.reduce((acc, v, i) => acc + v * b[i]!, 0);
    for (let p = 0; p < 12; p++) {
      for (let i = 0; i < d / 2; i++) {
        expect(Math.hypot(rq![p]![i]!, rq![p]![i + d / 2]!)).toBeCloseTo(Math.hypot(q[i]!, q[i + d / 2]!), 5);
      }
    }
    // <rope(q, m), rope(k, n)> depends on m - n only (RoFormer eq. 16).
    expect(dot(rq![5]!, rk![2]!)).toBeCloseTo(dot(rq![9]!, rk![6]!), 4);
    expect(dot(rq![5]!, rk![2]!)).not.toBeCloseTo(dot(rq![5]!, rk![3]!), 2);
  });
});
