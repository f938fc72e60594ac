/**
 * SwiGLU's gating (Shazeer, 2020), as the llama MLP uses it (issue 13): with s = sigmoid(g),
 *
 *   y = silu(g) u = g s u
 *   dg = dy u s (1 + g (1 - s)),   du = dy g s
 *
 * The plain composition is sigmoid, two products forward and about eight dispatches backward per
 * layer. On webgpu the forward is one elementwise program and the backward one program per
 * gradient (a tfjs program writes one output): dg and du.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { customOp, fusedOpsMode, onWebgpu, runWgsl } from './webgpu-program.js';

const WG = 128;

function elementwise(name: string, inputNames: string[], inputs: tf.Tensor1D[], body: string): tf.Tensor1D {
  const size = inputs[0]!.size;
  return runWgsl({
    name, inputNames, inputs, outputShape: [size], workgroupSize: WG, workgroups: Math.ceil(size / WG), uniforms: '', uniformData: [],
    code: `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let g = G[index];
          let u = U[index];
          let s = 1.0 / (1.0 + exp(-g));
          ${body}
        }
      }`,
  }) as tf.Tensor1D;
}

function forward(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (!onWebgpu()) return tf.tidy(() => tf.mul(tf.mul(g, tf.sigmoid(g)), u));
  return tf.tidy(() => tf.reshape(elementwise('swiglu_forward', ['G', 'U'], [tf.reshape(g, [-1]), tf.reshape(u, [-1])], 'result[index] = g * s * u;'), g.shape));
}

function backward(g: tf.Tensor, u: tf.Tensor, dy: tf.Tensor): [tf.Tensor, tf.Tensor] {
  if (!onWebgpu()) {
    return tf.tidy(() => {
      const s = tf.sigmoid(g);
      const dg = tf.mul(tf.mul(tf.mul(dy, u), s), tf.add(1, tf.mul(g, tf.sub(1, s))));
      return [dg, tf.mul(dy, tf.mul(g, s))];
    });
  }
  return tf.tidy(() => {
    const flat = [g, u, dy].map((t) => tf.reshape(t, [-1]) as tf.Tensor1D);
    const dg = elementwise('swiglu_dgate', ['G', 'U', 'DY'], flat, 'result[index] = DY[index] * u * s * (1.0 + g * (1.0 - s));');
    // `_ = u`: every binding must be used, Dawn's automatic layout drops one no code reads (fused-adamw.ts)
    const du = elementwise('swiglu_dup', ['G', 'U', 'DY'], flat, '_ = u; result[index] = DY[index] * g * s;');
    return [tf.reshape(dg, g.shape), tf.reshape(du, g.shape)];
  });
}

const fused = customOp(([g, u], save) => {
  save([g!, u!]);
  return {
    value: forward(g!, u!),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(saved[0]!, saved[1]!, dy),
  };
});

/** The fused op: silu(gate) * up, both of one shape. */
export function fusedSwiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (gate.shape.length !== up.shape.length || gate.shape.some((n, i) => n !== up.shape[i])) {
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `swiglu: gate [${gate.shape.join(', ')}] and up [${up.shape.join(', ')}] must have one shape`);
  }
  return fused(gate, up);
}

/** The plain composition (tfjs' gradients): what the model computes with the fused ops off. */
export function swigluPlain(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

/** What the model calls: the fused op when {@link fusedOpsMode} is not `off`, else the plain composition. */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return fusedOpsMode() === 'off' ? swigluPlain(gate, up) : fusedSwiglu(gate, up);
}
