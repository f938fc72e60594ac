import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyPlain, fusedCrossEntropy } from '../../../client/kernels/fused-cross-entropy.js';
import { isFedloraError } from '../../../shared/errors.js';
import { relErr, seeded, weightedGrads } from './reference.js';

/** nll and d(sum g nll)/dx in float64: lse - x[label], g (softmax - onehot). */
function reference(x: Float64Array, labels: number[], g: Float64Array, rows: number, cols: number): { nll: Float64Array; dx: Float64Array } {
  const nll = new Float64Array(rows);
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]!);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j]! - m);
    const lse = m + Math.log(s);
    nll[r] = lse - x[r * cols + labels[r]!]!;
    for (let j = 0; j < cols; j++) dx[r * cols + j] = g[r]! * (Math.exp(x[r * cols + j]! - lse) - (j === labels[r] ? 1 : 0));
  }
  return { nll, dx };
}

describe('fused softmax cross-entropy (cpu: the op form)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  // 2,053 columns: not a multiple of the 256-lane workgroup; std 4 makes the softmax peaked
  it.each([[6, 2053, 4], [3, 7, 1]])('forward and gradient match float64 (rows %i, vocab %i, std %i)', async (rows, cols, std) => {
    const x = seeded([rows, cols], 11 + cols, std);
    const g = seeded([rows], 5);
    const labels = Array.from({ length: rows }, (_, r) => (r * 7919 + 3) % cols);
    const l = tf.tensor1d(labels, 'int32');
    const want = reference(x.v, labels, g.v, rows, cols);
    const before = tf.memory().numTensors;
    const nll = fusedCrossEntropy(x.t as tf.Tensor2D, l);
    expect(relErr(await nll.data(), want.nll)).toBeLessThan(1e-6);
    const [dx] = await weightedGrads((z) => fusedCrossEntropy(z as tf.Tensor2D, l), [x.t], g.t);
    expect(relErr(dx!, want.dx)).toBeLessThan(1e-6);
    // the plain composition the model falls back to computes the same
    const plain = crossEntropyPlain(x.t as tf.Tensor2D, l);
    expect(relErr(await plain.data(), want.nll)).toBeLessThan(1e-6);
    const [dxPlain] = await weightedGrads((z) => crossEntropyPlain(z as tf.Tensor2D, l), [x.t], g.t);
    expect(relErr(dxPlain!, want.dx)).toBeLessThan(1e-6);
    tf.dispose([nll, plain]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x.t, g.t, l]);
  });

  it('a wrong label and a real mistake are caught: a label off by one moves the loss', async () => {
    const x = seeded([2, 9], 3, 2);
    const a = await fusedCrossEntropy(x.t as tf.Tensor2D, tf.tensor1d([1, 2], 'int32')).data();
    const b = await fusedCrossEntropy(x.t as tf.Tensor2D, tf.tensor1d([2, 2], 'int32')).data();
    expect(Math.abs(a[0]! - b[0]!)).toBeGreaterThan(1e-3);
    expect(a[1]).toBe(b[1]);
  });

  it('the op form runs on wasm too (its gather with batchDims reads out of bounds: not used)', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    try {
      const x = seeded([3, 301], 7, 2);
      const labels = [0, 300, 17];
      const want = reference(x.v, labels, new Float64Array(3).fill(1), 3, 301);
      const nll = fusedCrossEntropy(x.t as tf.Tensor2D, tf.tensor1d(labels, 'int32'));
      expect(relErr(await nll.data(), want.nll)).toBeLessThan(1e-6);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('refuses labels that are not int32 rows of the logits', () => {
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    try {
      fusedCrossEntropy(x, tf.tensor1d([1, 2, 3], 'int32'));
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e) && e.code === 'FL_ERR_SHAPE_MISMATCH').toBe(true);
    }
    expect(() => fusedCrossEntropy(x, tf.tensor1d([1, 2]))).toThrow(/int32/);
  });
});
