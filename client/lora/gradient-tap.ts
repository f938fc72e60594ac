/**
 * A hook on the matmuls by trainable LoRA factors, for per-example gradient norms (DP-SGD).
 *
 * For y = x @ V with x [rows, p] and V [p, q] trainable, the gradient of a summed loss is
 * dV = x^T dy, and example i's share is x_i^T dy_i over its rows. Recording x and dy is enough
 * to get every example's gradient norm without materialising per-example gradients
 * ("ghost norms", Goodfellow 2015; Li et al. 2022, "Large language models can be strong
 * differentially private learners", section 4), and to rebuild the clipped sum.
 */
import * as tf from '@tensorflow/tfjs';
import { avoidTransposeFlags } from './matmul-policy.js';

export interface GradientTap {
  /**
   * Called during the backward pass of `x @ variable`.
   * @param variable the trainable factor (stored [p, q], as multiplied)
   * @param x the matmul's input [examples * rowsPerExample, p]; disposed after the call unless kept
   * @param dy the gradient of the loss w.r.t. the matmul's output [examples * rowsPerExample, q]; likewise
   * @param examples the number of examples in the batch (the first dimension of the layer's input)
   */
  record(variable: tf.Variable, x: tf.Tensor2D, dy: tf.Tensor2D, examples: number): void;
}

/**
 * `x @ variable` (x [rows, p], V [p, q] small: a LoRA factor) with a hand-written gradient that
 * never asks tfjs for a transposed matmul: on wasm those cost 10x to 40x more than a plain matmul
 * plus an explicit transpose of the small operand (bench/training.bench.ts; e.g. x^T g with x
 * [2048, 768], g [2048, 8]: 47 ms with transposeA, 1.4 ms as (transpose(g) x)^T):
 *   dx = dy transpose(V);   dV = x^T dy, computed by transposing whichever of x and dy is smaller.
 * With a tap, the backward pass also reports (x, dy) to it (DP-SGD's ghost norms). Without a tap,
 * on backends where transpose flags are cheap (matmul-policy.ts), it is a plain tf.matMul.
 * @param examples the number of examples in the batch, passed to the tap
 */
export function trainableMatmul(x: tf.Tensor2D, variable: tf.Variable, tap: GradientTap | null = null, examples = x.shape[0]): tf.Tensor2D {
  if (tap === null && !avoidTransposeFlags()) return tf.matMul(x, variable as tf.Tensor2D);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor2D;
    const v = args[1] as tf.Tensor2D;
    const save = args[2] as tf.GradSaveFunc;
    save([input, v]);
    return {
      value: tf.matMul(input, v),
      gradFunc: (dyAny: tf.Tensor, saved: tf.Tensor[]) => {
        const dy = dyAny as tf.Tensor2D;
        const [xs, vs] = saved as [tf.Tensor2D, tf.Tensor2D];
        if (tap !== null) tap.record(variable, xs, dy, examples);
        const dx = tf.matMul(dy, tf.transpose(vs));
        const [p, q] = vs.shape;
        const dv = p >= q ? tf.transpose(tf.matMul(tf.transpose(dy), xs)) : tf.matMul(tf.transpose(xs), dy);
        return [dx, dv];
      },
    };
  });
  return op(x, variable) as tf.Tensor2D;
}
