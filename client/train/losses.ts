/** Cross-entropy losses for the two model tasks, per example so DP-SGD can clip each one. */
import * as tf from '@tensorflow/tfjs';

/**
 * -log softmax(logits)[label] for each example.
 * @param logits [N, C]
 * @param labels [N] int32 class ids
 * @returns [N]
 */
export function softmaxCrossEntropyPerExample(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const classes = logits.shape[logits.rank - 1]!;
    const oneHot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, classes);
    return tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1)) as tf.Tensor1D;
  });
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
    const vocab = logits.shape[logits.rank - 1]!;
    const oneHot = tf.oneHot(tf.cast(targets, 'int32'), vocab);
    const nll = tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1)); // [N, T]
    const m = mask ?? tf.onesLike(nll);
    const masked = tf.mul(nll, m);
    const perSeqCount = tf.sum(m, -1);
    const perExample = tf.div(tf.sum(masked, -1), tf.maximum(perSeqCount, 1)) as tf.Tensor1D;
    return { perExample, sum: tf.sum(masked) as tf.Scalar, count: tf.sum(m) as tf.Scalar };
  });
}
