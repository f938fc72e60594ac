/**
 * RMSNorm over the last axis (Zhang & Sennrich, 2019), as the llama model uses it (issue 13):
 *
 *   y_j = w_j x_j r,   r = 1 / sqrt(mean_k x_k^2 + eps)
 *   dx_j = r w_j dy_j - x_j (r^3 / n) sum_k w_k dy_k x_k,   dw_j = sum over rows of dy_j x_j r
 *
 * The plain composition is six dispatches forward and about a dozen backward per norm (61 norms
 * per SmolLM step). On webgpu the forward is one program and the input gradient one program (a
 * workgroup per row, tree reductions in workgroup memory). The weight gradient is only computed
 * when the weight is a trainable variable (pre-training; LoRA keeps the norms frozen), with tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { customOp, f32, fusedOpsMode, i32, onWebgpu, runWgsl, treeReduce } from './webgpu-program.js';

const WG = 128;

/** The row's r = 1 / sqrt(mean x^2 + eps) into `r` (and, with `dot`, sum w dy x into `sd`). */
function rowStats(dot: boolean): string {
  return `
  var ss = 0.0;
  ${dot ? 'var sd = 0.0;' : ''}
  for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) {
    let v = X[base + j];
    ss += v * v;
    ${dot ? 'sd += W[j] * DY[base + j] * v;' : ''}
  }
  red[localIndex] = ss;
  ${dot ? 'red2[localIndex] = sd;' : ''}
  ${treeReduce('red', WG, (a, b) => `${a} + ${b}`)}
  ${dot ? treeReduce('red2', WG, (a, b) => `${a} + ${b}`) : ''}
  let r = 1.0 / sqrt(red[0] / f32(uniforms.cols) + uniforms.eps);`;
}

function forwardGpu(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const [rows, cols] = x.shape;
  return runWgsl({
    name: 'rmsnorm_forward', inputNames: ['X', 'W'], inputs: [x, w], outputShape: [rows, cols], workgroupSize: WG, workgroups: rows,
    uniforms: 'rows : i32, cols : i32, eps : f32,', uniformData: [i32(rows), i32(cols), f32(eps)],
    code: `
      var<workgroup> red : array<f32, ${WG}>;
      fn main(index : i32) {
        let wrow = index / ${WG};
        let row = min(wrow, uniforms.rows - 1); // a workgroup past the rows (a spread dispatch) writes nothing
        let base = row * uniforms.cols;
        ${rowStats(false)}
        if (wrow < uniforms.rows) {
          for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) { result[base + j] = X[base + j] * r * W[j]; }
        }
      }`,
  }) as tf.Tensor2D;
}

function inputGradGpu(x: tf.Tensor2D, w: tf.Tensor1D, dy: tf.Tensor2D, eps: number): tf.Tensor2D {
  const [rows, cols] = x.shape;
  return runWgsl({
    name: 'rmsnorm_backward', inputNames: ['X', 'W', 'DY'], inputs: [x, w, dy], outputShape: [rows, cols], workgroupSize: WG, workgroups: rows,
    uniforms: 'rows : i32, cols : i32, eps : f32,', uniformData: [i32(rows), i32(cols), f32(eps)],
    code: `
      var<workgroup> red : array<f32, ${WG}>;
      var<workgroup> red2 : array<f32, ${WG}>;
      fn main(index : i32) {
        let wrow = index / ${WG};
        let row = min(wrow, uniforms.rows - 1);
        let base = row * uniforms.cols;
        ${rowStats(true)}
        let c = r * r * r / f32(uniforms.cols) * red2[0];
        if (wrow < uniforms.rows) {
          for (var j = i32(localIndex); j < uniforms.cols; j += ${WG}) {
            result[base + j] = r * W[j] * DY[base + j] - X[base + j] * c;
          }
        }
      }`,
  }) as tf.Tensor2D;
}

function rsqrtMeanSquare(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)) as tf.Tensor2D;
}

function inputGradOps(x: tf.Tensor2D, w: tf.Tensor1D, dy: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const r = rsqrtMeanSquare(x, eps);
    const wdy = tf.mul(dy, w);
    const c = tf.mul(tf.div(tf.pow(r, 3), x.shape[1]), tf.sum(tf.mul(wdy, x), -1, true));
    return tf.sub(tf.mul(wdy, r), tf.mul(x, c));
  });
}

function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D, eps: number): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(dy, tf.mul(x, rsqrtMeanSquare(x, eps))), 0));
}

/**
 * The op for one call, on x [rows, n]: with `trainWeight` the weight is an input of the op (and
 * gets a gradient), otherwise it is closed over and only x does.
 */
function fusedFor(w: tf.Tensor1D, eps: number, trainWeight: boolean): (...args: tf.Tensor[]) => tf.Tensor {
  const forward = (x: tf.Tensor2D): tf.Tensor2D => (onWebgpu() ? forwardGpu(x, w, eps) : tf.tidy(() => tf.mul(tf.mul(x, rsqrtMeanSquare(x, eps)), w)));
  const dx = (x: tf.Tensor2D, sw: tf.Tensor1D, dy: tf.Tensor2D): tf.Tensor2D => (onWebgpu() ? inputGradGpu(x, sw, dy, eps) : inputGradOps(x, sw, dy, eps));
  if (trainWeight) {
    return customOp(([x, weight], save) => {
      save([x!, weight!]);
      return {
        value: forward(x as tf.Tensor2D),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor1D];
          return [dx(sx, sw, dy as tf.Tensor2D), weightGrad(sx, dy as tf.Tensor2D, eps)];
        },
      };
    });
  }
  return customOp(([x], save) => {
    save([x!, w]);
    return {
      value: forward(x as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor1D];
        return dx(sx, sw, dy as tf.Tensor2D);
      },
    };
  });
}

/**
 * The fused op over the last axis of x [..., n] with weight [n]. The weight gets a gradient only
 * when it is a trainable variable (or `trainWeight` says so).
 */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number, trainWeight = weight instanceof tf.Variable && weight.trainable): tf.Tensor {
  const n = x.shape[x.rank - 1]!;
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, n]);
    const op = fusedFor(weight, eps, trainWeight);
    const y = trainWeight ? op(x2, weight) : op(x2);
    return tf.reshape(y, x.shape);
  });
}

/** The plain composition (tfjs' gradients): what the model computes with the fused ops off. */
export function rmsNormPlain(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  });
}

/** What the model calls: the fused op when {@link fusedOpsMode} is not `off`, else the plain composition. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return fusedOpsMode() === 'off' ? rmsNormPlain(x, weight, eps) : fusedRmsNorm(x, weight, eps);
}
