import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { batchedMatmul, matmulPlainGrad } from '../../client/models/llama-matmul.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(['cpu', 'wasm'])('transposition-free matmul gradients (%s)', (backend) => {
  it('give the values and gradients of tf.matMul, 2-D and batched', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const before = tf.memory().numTensors;
    // [ours, reference, tolerance]: kept out of the tidy, read asynchronously, then freed.
    const checks: Array<[tf.Tensor, tf.Tensor, number]> = [];
    tf.tidy(() => {
      const a = tf.randomNormal([5, 7], 0, 1, 'float32', 1) as tf.Tensor2D;
      const b = tf.randomNormal([7, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
      const w = tf.randomNormal([5, 3], 0, 1, 'float32', 3);
      // A weighted sum makes every output element's gradient distinct.
      const ours = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matmulPlainGrad(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
      const ref = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
      checks.push([matmulPlainGrad(a, b), tf.matMul(a, b), 0]);
      // Same products summed in possibly another order: float32 rounding only (values O(1), k <= 7).
      for (let i = 0; i < 2; i++) checks.push([ours[i]!, ref[i]!, 1e-5]);

      const A = tf.randomNormal([4, 6, 5], 0, 1, 'float32', 4) as tf.Tensor3D;
      const B = tf.randomNormal([4, 5, 2], 0, 1, 'float32', 5) as tf.Tensor3D;
      const W = tf.randomNormal([4, 6, 2], 0, 1, 'float32', 6);
      const oursB = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(batchedMatmul(x as tf.Tensor3D, y as tf.Tensor3D), W)))([A, B]);
      const refB = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D), W)))([A, B]);
      checks.push([batchedMatmul(A, B), tf.matMul(A, B), 1e-5]);
      for (let i = 0; i < 2; i++) checks.push([oursB[i]!, refB[i]!, 1e-5]);
      for (const [x, y] of checks) {
        tf.keep(x);
        tf.keep(y);
      }
    });
    for (const [x, y, tol] of checks) {
      const d = maxAbsDiff(await x.data() as Float32Array, await y.data() as Float32Array);
      if (tol === 0) expect(d).toBe(0);
      else expect(d).toBeLessThan(tol);
    }
    tf.dispose(checks.flatMap(([x, y]) => [x, y]));
    expect(tf.memory().numTensors).toBe(before);
  });
});
