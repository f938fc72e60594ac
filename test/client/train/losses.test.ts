import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { softmaxCrossEntropyPerExample, tokenCrossEntropy } from '../../../client/train/losses.js';
import { maxAbsDiff, testValues } from '../lora/reference.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** float64: -log softmax(row)[t] and its gradient softmax(row) - onehot(t). */
function reference(row: ArrayLike<number>, t: number): { nll: number; grad: number[] } {
  const max = Math.max(...Array.from(row));
  const exps = Array.from(row, (v) => Math.exp(v - max));
  const z = exps.reduce((a, b) => a + b, 0);
  return { nll: Math.log(z) + max - row[t]!, grad: exps.map((e, i) => e / z - (i === t ? 1 : 0)) };
}

describe('cross-entropy losses', () => {
  it('classification: values and gradients equal the float64 formulas', async () => {
    const N = 5;
    const C = 7;
    const logits = tf.tensor2d(testValues(N * C, 1).map((v) => v * 4), [N, C]);
    const labels = tf.tensor1d([0, 6, 3, 3, 1], 'int32');
    const z = tf.variable(logits, true, 'ce-logits');
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(softmaxCrossEntropyPerExample(z, labels), tf.tensor1d([1, 2, 1, 0.5, 1]))) as tf.Scalar, [z]);
    const per = await softmaxCrossEntropyPerExample(logits, labels).data();
    const l = await logits.data();
    const refs = [0, 6, 3, 3, 1].map((t, i) => reference(l.subarray(i * C, (i + 1) * C), t));
    expect(maxAbsDiff(per, refs.map((r) => r.nll))).toBeLessThan(1e-5);
    // weighted sum, so the gradient's per-row scaling by dy is checked too
    const w = [1, 2, 1, 0.5, 1];
    expect((await value.data())[0]).toBeCloseTo(refs.reduce((s, r, i) => s + w[i]! * r.nll, 0), 4);
    expect(maxAbsDiff(await grads['ce-logits']!.data(), refs.flatMap((r, i) => r.grad.map((g) => w[i]! * g)))).toBeLessThan(1e-5);
    tf.dispose([logits, z, labels, value, ...Object.values(grads)]);
  });

  it('causal LM: per-sequence means over counted tokens, masked positions ignored', async () => {
    const [N, T, V] = [2, 3, 4];
    const lv = testValues(N * T * V, 2);
    const tv = [1, 3, 0, 2, 2, 1];
    const mv = [1, 1, 0, 1, 0, 0];
    const out = tokenCrossEntropy(tf.tensor3d(lv, [N, T, V]), tf.tensor2d(tv, [N, T], 'int32'), tf.tensor2d(mv, [N, T]));
    const nll = tv.map((t, i) => reference(lv.subarray(i * V, (i + 1) * V), t).nll);
    expect(maxAbsDiff(await out.perExample.data(), [(nll[0]! + nll[1]!) / 2, nll[3]!])).toBeLessThan(1e-5);
    expect((await out.sum.data())[0]).toBeCloseTo(nll[0]! + nll[1]! + nll[3]!, 5);
    expect((await out.count.data())[0]).toBe(3);
  });
});
