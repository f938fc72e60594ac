/**
 * AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Algorithm 2), as
 * torch.optim.AdamW computes it:
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * wd * p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Written here because tfjs has Adam but no decoupled weight decay (its Adam folds an L2 term into
 * the gradient, which Adam then rescales: not the same thing). The learning rate is given per step
 * so a schedule can drive it. The moments are variables owned by the optimizer (dispose()).
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { fusedAdamW, fusedAdamWActive } from '../kernels/fused-adamw.js';
import { variableFrom } from '../lora/init.js';

export interface AdamWOptions {
  /** @default 0.9 */
  readonly beta1?: number;
  /** @default 0.999 */
  readonly beta2?: number;
  /** @default 1e-8 */
  readonly epsilon?: number;
  /** Decoupled weight decay. @default 0 */
  readonly weightDecay?: number;
  /**
   * On the webgpu backend, update each variable with the fused WGSL kernels
   * (client/kernels/fused-adamw.ts: 3 dispatches instead of ~14) unless FEDLORA_FUSED_KERNELS=0
   * turned them off. @default true
   */
  readonly fused?: boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly fused: boolean;
  private readonly moments = new Map<tf.Variable, { m: tf.Variable; v: tf.Variable }>();
  /** Steps taken (t). */
  private t = 0;

  constructor(options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.fused = options.fused ?? true;
    for (const [name, v, lo, hi] of [['beta1', this.beta1, 0, 1], ['beta2', this.beta2, 0, 1]] as const) {
      if (!(v >= lo && v < hi)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `AdamW ${name} must be in [${lo}, ${hi}), got ${v}`);
    }
    if (!(this.epsilon > 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `AdamW epsilon must be > 0, got ${this.epsilon}`);
    if (!(this.weightDecay >= 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `AdamW weightDecay must be >= 0, got ${this.weightDecay}`);
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /**
   * One update of every variable with its gradient. The gradients stay the caller's.
   * @param lr the learning rate of this step
   */
  applyGradients(variables: readonly tf.Variable[], gradients: readonly tf.Tensor[], lr: number): void {
    if (variables.length !== gradients.length) {
      throw new FedloraError('FL_ERR_TRAINING', `AdamW: ${variables.length} variables but ${gradients.length} gradients`);
    }
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    variables.forEach((p, i) => {
      const g = gradients[i]!;
      let state = this.moments.get(p);
      if (state === undefined) {
        state = { m: variableFrom(tf.zerosLike(p), false), v: variableFrom(tf.zerosLike(p), false) };
        this.moments.set(p, state);
      }
      const { m, v } = state;
      if (this.fused && fusedAdamWActive()) {
        fusedAdamW(p, m, v, g, { lr, weightDecay: this.weightDecay, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, c1, c2 });
        return;
      }
      tf.tidy(() => {
        const m1 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v1 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(m1);
        v.assign(v1);
        const update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), this.epsilon));
        const decayed = this.weightDecay === 0 ? p : tf.mul(p, 1 - lr * this.weightDecay);
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /** Frees the moment variables. */
  dispose(): void {
    for (const { m, v } of this.moments.values()) tf.dispose([m, v]);
    this.moments.clear();
  }
}
