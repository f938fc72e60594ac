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
 * `x @ variable` whose backward pass reports (x, dy) to the tap, and returns the usual gradients
 * dx = dy V^T and dV = x^T dy.
 */
export function tappedMatmul(x: tf.Tensor2D, variable: tf.Variable, tap: GradientTap, examples: number): tf.Tensor2D {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor2D;
    const v = args[1] as tf.Tensor2D;
    const save = args[2] as tf.GradSaveFunc;
    save([input, v]);
    return {
      value: tf.matMul(input, v),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, vs] = saved as [tf.Tensor2D, tf.Tensor2D];
        tap.record(variable, xs, dy as tf.Tensor2D, examples);
        return [tf.matMul(dy as tf.Tensor2D, vs, false, true), tf.matMul(xs, dy as tf.Tensor2D, true, false)];
      },
    };
  });
  return op(x, variable) as tf.Tensor2D;
}
