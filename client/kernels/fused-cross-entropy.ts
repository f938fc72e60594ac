/**
 * Softmax cross-entropy over the vocabulary from logits and integer labels (issue 13): the
 * negative log-likelihood of each row's label,
 *
 *   nll_r = lse_r - x[r, label_r],   lse_r = m_r + log sum_v exp(x[r, v] - m_r),  m_r = max_v x[r, v]
 *   d nll_r / d x[r, v] = softmax(x_r)_v - [v = label_r]
 *
 * The plain composition (log-softmax, a one-hot [rows, vocab] matrix, a product and a sum, and
 * tfjs' gradients of each) reads and writes [rows, vocab] matrices about ten times per step; at the
 * SmolLM shape (1,024 rows x 49,152) each is 200 MB. On webgpu the fused forward is one program
 * (a workgroup per row: max, sum of exponentials, the label's logit) writing rows values, and the
 * backward one program writing g_r (softmax - onehot) once.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { customOp, fusedOpsMode, i32, onWebgpu, runWgsl, treeReduce } from './webgpu-program.js';

const WG = 256;

/** The row max and log-sum-exp into `mx` and `lse`, for the row at `base` (every lane reaches it). */
const ROW_LSE = `
  var m = -3.402823e38;
  for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) { m = max(m, X[base + j]); }
  red[localIndex] = m;
  ${treeReduce('red', WG, (a, b) => `max(${a}, ${b})`)}
  let mx = red[0];
  workgroupBarrier();
  var acc = 0.0;
  for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) { acc += exp(X[base + j] - mx); }
  red[localIndex] = acc;
  ${treeReduce('red', WG, (a, b) => `${a} + ${b}`)}
  let lse = mx + log(red[0]);`;

function forwardGpu(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const [rows, cols] = logits.shape;
  return runWgsl({
    name: 'ce_forward', inputNames: ['X', 'L'], inputs: [logits, labels], outputShape: [rows], workgroupSize: WG, workgroups: rows,
    uniforms: 'rows : i32, cols : i32,', uniformData: [i32(rows), i32(cols)],
    code: `
      var<workgroup> red : array<f32, ${WG}>;
      fn main(index : i32) {
        let wrow = index / ${WG};
        let row = min(wrow, uniforms.rows - 1); // a workgroup past the rows (a spread dispatch) writes nothing
        let base = row * uniforms.cols;
        ${ROW_LSE}
        if (localIndex == 0u && wrow < uniforms.rows) {
          let lab = clamp(L[row], 0, uniforms.cols - 1);
          result[row] = lse - X[base + lab];
        }
      }`,
  }) as tf.Tensor1D;
}

function backwardGpu(logits: tf.Tensor2D, labels: tf.Tensor1D, dy: tf.Tensor1D): tf.Tensor2D {
  const [rows, cols] = logits.shape;
  return runWgsl({
    name: 'ce_backward', inputNames: ['X', 'L', 'DY'], inputs: [logits, labels, dy], outputShape: [rows, cols], workgroupSize: WG, workgroups: rows,
    uniforms: 'rows : i32, cols : i32,', uniformData: [i32(rows), i32(cols)],
    code: `
      var<workgroup> red : array<f32, ${WG}>;
      fn main(index : i32) {
        let wrow = index / ${WG};
        let row = min(wrow, uniforms.rows - 1);
        let base = row * uniforms.cols;
        ${ROW_LSE}
        if (wrow < uniforms.rows) {
          let lab = clamp(L[row], 0, uniforms.cols - 1);
          let g = DY[row];
          for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) {
            result[base + j] = g * (exp(X[base + j] - lse) - select(0.0, 1.0, j == lab));
          }
        }
      }`,
  }) as tf.Tensor2D;
}

function forwardOps(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const mx = tf.max(logits, 1, true);
    const lse = tf.add(tf.log(tf.sum(tf.exp(tf.sub(logits, mx)), 1)), tf.reshape(mx, [-1]));
    // each row's label logit by a flat gather: tfjs-wasm's gather with batchDims 1 reads out of bounds
    const [rows, cols] = logits.shape;
    const flat = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(cols, 'int32')), labels);
    return tf.sub(lse, tf.gather(tf.reshape(logits, [-1]), flat)) as tf.Tensor1D;
  });
}

function backwardOps(logits: tf.Tensor2D, labels: tf.Tensor1D, dy: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(tf.softmax(logits), tf.oneHot(labels, logits.shape[1])), tf.expandDims(dy, 1)) as tf.Tensor2D);
}

/** The op for one call: labels are closed over (saved for the backward pass), so only logits get a gradient. */
function fusedFor(labels: tf.Tensor1D): (logits: tf.Tensor) => tf.Tensor {
  return customOp(([logits], save) => {
    save([logits!, labels]);
    const x = logits as tf.Tensor2D;
    return {
      value: onWebgpu() ? forwardGpu(x, labels) : forwardOps(x, labels),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sl] = saved as [tf.Tensor2D, tf.Tensor1D];
        return onWebgpu() ? backwardGpu(sx, sl, dy as tf.Tensor1D) : backwardOps(sx, sl, dy as tf.Tensor1D);
      },
    };
  });
}

function check(logits: tf.Tensor2D, labels: tf.Tensor1D): void {
  if (logits.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== logits.shape[0] || labels.dtype !== 'int32') {
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH',
      `crossEntropy: logits must be [rows, vocab] and labels [rows] int32, got [${logits.shape.join(', ')}] and [${labels.shape.join(', ')}] ${labels.dtype}`);
  }
}

/**
 * The fused op: nll [rows] for logits [rows, vocab] and labels [rows] (int32, each < vocab). The
 * gradient flows to the logits only.
 */
export function fusedCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  check(logits, labels);
  return fusedFor(labels)(logits) as tf.Tensor1D;
}

/** The plain composition (tfjs' gradients): what the model computes with the fused ops off. */
export function crossEntropyPlain(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  check(logits, labels);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.sum(tf.mul(logp, tf.oneHot(labels, logits.shape[1])), 1)) as tf.Tensor1D;
  });
}

/** What the model calls: the fused op when {@link fusedOpsMode} is not `off`, else the plain composition. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return fusedOpsMode() === 'off' ? crossEntropyPlain(logits, labels) : fusedCrossEntropy(logits, labels);
}
