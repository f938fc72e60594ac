/**
 * Cross-entropy losses for the two model tasks, per example so DP-SGD can clip each one.
 *
 * -log softmax(z)[t] = logsumexp(z) - z[t], with z[t] picked by a gather on the flattened logits
 * rather than a one-hot mask: a one-hot of [N, T, V] would double the memory of the logits, which
 * for a real vocabulary (49,152 for SmolLM) is the largest tensor of the step.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * -log softmax(logits)[target] for every row of logits2d [M, V]; targets [M] int32.
 * A custom gradient, d/dz = softmax(z) - onehot(t), because tf's gradient of a gather needs the
 * UnsortedSegmentSum kernel, which the wasm backend lacks; the one-hot exists only in the backward
 * pass, where the gradient of the logits has that size anyway.
 * @returns [M]
 */
const negLogLikelihood = (logits2d: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D => nllOp(logits2d, tf.cast(targets, 'int32')) as tf.Tensor1D;

const nllOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const logits = args[0] as tf.Tensor2D;
  const targets = args[1] as tf.Tensor1D;
  const save = args[2] as tf.GradSaveFunc;
  save([logits, targets]);
  const [rows, vocab] = logits.shape;
  const flatIndex = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(vocab, 'int32')), targets);
  const picked = tf.gather(tf.reshape(logits, [rows * vocab]), flatIndex);
  return {
    value: tf.sub(tf.logSumExp(logits, -1), picked),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [z, t] = saved as [tf.Tensor2D, tf.Tensor1D];
      const g = tf.sub(tf.softmax(z), tf.oneHot(t, z.shape[1]));
      return [tf.mul(g, tf.expandDims(dy, 1)), tf.zerosLike(t)];
    },
  };
});

/**
 * -log softmax(logits)[label] for each example.
 * @param logits [N, C]
 * @param labels [N] int32 class ids
 * @returns [N]
 */
export function softmaxCrossEntropyPerExample(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => negLogLikelihood(logits as tf.Tensor2D, tf.reshape(labels, [-1]) as tf.Tensor1D));
}

/**
 * Next-token cross-entropy: for each sequence, the mean over its counted positions.
 * @param logits [N, T, V]
 * @param targets [N, T] int32
 * @param mask [N, T] float32, 1 where a target counts; all ones when absent
 * @returns perExample [N] (a sequence with no counted token gives 0), sum over all counted
 *   tokens (scalar) and their count (scalar)
 */
export function tokenCrossEntropy(logits: tf.Tensor, targets: tf.Tensor, mask?: tf.Tensor): { perExample: tf.Tensor1D; sum: tf.Scalar; count: tf.Scalar } {
  return tf.tidy(() => {
    const [n, t, vocab] = logits.shape as [number, number, number];
    const nll = tf.reshape(negLogLikelihood(tf.reshape(logits, [n * t, vocab]), tf.reshape(targets, [n * t])), [n, t]);
    const m = mask ?? tf.onesLike(nll);
    const masked = tf.mul(nll, m);
    const perSeqCount = tf.sum(m, -1);
    const perExample = tf.div(tf.sum(masked, -1), tf.maximum(perSeqCount, 1)) as tf.Tensor1D;
    return { perExample, sum: tf.sum(masked) as tf.Scalar, count: tf.sum(m) as tf.Scalar };
  });
}
