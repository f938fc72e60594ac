/**
 * LoRA on one dense layer, in the three variants the strategies need (docs/strategies.md):
 *
 *   y = x W0^T + b + s * ((x A^T) R^T) B^T,   s = alpha / r
 *
 * with W0 [m, n] frozen, A [r, n], B [m, r] (PEFT's lora_A / lora_B layout, n = in, m = out) and,
 * for Fed-SB only, R [r, r] (without R the middle factor is the identity).
 *
 * | variant | trained | frozen              | paper                          |
 * | ------- | ------- | ------------------- | ------------------------------ |
 * | `lora`  | A, B    | W0                  | Hu et al. 2021; FedIT, FLoRA   |
 * | `ffa`   | B       | W0, A               | FFA-LoRA (Sun et al. 2024)     |
 * | `fedsb` | R       | W0, A, B            | Fed-SB / LoRA-SB (Singhal 2025)|
 *
 * Storage (docs/training.md, "Backends"): every matrix is kept in the layout its forward matmul
 * wants, so no matmul of the forward pass transposes: W0 as W0^T [n, m] (plus W0 itself [m, n]
 * for the custom gradient of the frozen matmul, see frozen-matmul.ts), trainable factors as
 * variables A^T [n, r], B^T [r, m], R^T [r, r], frozen factors as pairs like W0. The trainable
 * matmuls have a custom gradient too (gradient-tap.ts): no matmul of the backward pass transposes
 * either; only small [r, *] operands are transposed explicitly. The public API
 * (`setFactors`, `getFactors`, `mergeStack`) always speaks PEFT's layout: A [r, n], B [m, r], R [r, r].
 *
 * Tensor ownership: the layer owns every tensor it stores and frees them in `dispose()`; values
 * passed in as Float32Array are copied; a frozen weight or bias passed in as a tensor is taken
 * over (it stays on the device: no round trip through the CPU); values read out are fresh
 * Float32Array copies, read asynchronously (WebGPU in Node has no synchronous read).
 */
import * as tf from '@tensorflow/tfjs';
import type { AdapterVariant, ModuleFactors } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import { LazyFrozenPair, frozenMatmul, makeFrozenPair, makeFrozenPairFromTransposed, probedFrozenMatmul } from './frozen-matmul.js';
import { trainableMatmul, type GradientTap } from './gradient-tap.js';
import { avoidTransposeFlags } from './matmul-policy.js';
import { kaimingUniformA, seededUniform, variableFrom } from './init.js';

/** How a frozen weight given as a flat array is laid out. */
export type WeightLayout = 'out-in' | 'in-out';

export interface LoraDenseOptions {
  /** Hugging Face module path, e.g. `model.layers.3.self_attn.q_proj` or `layers.0`. */
  readonly path: string;
  readonly variant: AdapterVariant;
  /** n: input features. */
  readonly inFeatures: number;
  /** m: output features. */
  readonly outFeatures: number;
  /** r: a positive integer. */
  readonly rank: number;
  /** LoRA alpha; the scaling is s = alpha / rank. @default rank (s = 1) */
  readonly alpha?: number;
  /**
   * The frozen W0, row-major. As a checkpoint stores nn.Linear.weight: [m, n] (`out-in`);
   * or already transposed [n, m] (`in-out`). A tensor (already on the device, e.g. a loaded
   * base model's weight) is taken over by the layer, which frees it in `dispose()`.
   */
  readonly weight: Float32Array | tf.Tensor2D;
  /** @default 'out-in' (the Hugging Face / PyTorch layout) */
  readonly weightLayout?: WeightLayout;
  /** The frozen bias [m]; none when absent. A tensor is taken over, as `weight`. */
  readonly bias?: Float32Array | tf.Tensor1D;
  /**
   * Seed of the initial factors: A ~ U(-1/sqrt(n), 1/sqrt(n)) (PEFT's Kaiming-uniform) from
   * `seed`; for `fedsb` B ~ U(-1/sqrt(r), 1/sqrt(r)) from `seed + 1`. B = 0 for `lora`/`ffa` and
   * R = 0 for `fedsb`, so a fresh layer computes exactly the base layer. @default 0
   */
  readonly seed?: number;
}

/** A LoRA-wrapped dense layer; see the file comment for the math and the storage. */
export class LoraDense {
  readonly path: string;
  readonly variant: AdapterVariant;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;
  readonly alpha: number;
  /** s = alpha / rank. */
  readonly scaling: number;

  private w0: LazyFrozenPair;
  private readonly bias: tf.Tensor1D | null;
  /** Trainable factors, stored transposed: A^T [n, r], B^T [r, m], R^T [r, r]. */
  private readonly aT: tf.Variable | null;
  private readonly bT: tf.Variable | null;
  private readonly rT: tf.Variable | null;
  /** Frozen factors, in both layouts. */
  private frozenA: LazyFrozenPair | null = null;
  private frozenB: LazyFrozenPair | null = null;
  private readonly w0Matmul: (x: tf.Tensor2D) => tf.Tensor2D;
  private readonly aMatmul: (x: tf.Tensor2D) => tf.Tensor2D;
  private readonly bMatmul: (x: tf.Tensor2D) => tf.Tensor2D;
  private tap: GradientTap | null = null;
  private baseTap: { probe: tf.Variable; op: (x: tf.Tensor2D, probe: tf.Variable) => tf.Tensor2D } | null = null;
  private disposed = false;

  constructor(options: LoraDenseOptions) {
    const { path, variant, inFeatures: n, outFeatures: m, rank: r } = options;
    const where = `LoRA module '${path}'`;
    for (const [name, v] of [['inFeatures', n], ['outFeatures', m], ['rank', r]] as const) {
      if (!Number.isInteger(v) || v <= 0) {
        throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${where}: ${name} must be a positive integer, got ${v}`);
      }
    }
    if (variant !== 'lora' && variant !== 'ffa' && variant !== 'fedsb') {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${where}: variant must be lora, ffa or fedsb, got '${String(variant)}'`);
    }
    const alpha = options.alpha ?? r;
    if (!Number.isFinite(alpha) || alpha <= 0) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${where}: alpha must be a positive number, got ${alpha}`);
    }
    const inOut = options.weightLayout === 'in-out';
    expectValues(where, 'weight', options.weight, inOut ? [n, m] : [m, n]);
    if (options.bias !== undefined) expectValues(where, 'bias', options.bias, [m]);

    this.path = path;
    this.variant = variant;
    this.inFeatures = n;
    this.outFeatures = m;
    this.rank = r;
    this.alpha = alpha;
    this.scaling = alpha / r;

    const w = options.weight;
    if (w instanceof Float32Array) this.w0 = inOut ? makeFrozenPairFromTransposed(w, m, n) : makeFrozenPair(w, m, n);
    else this.w0 = inOut ? new LazyFrozenPair(tf.keep(tf.transpose(w)), w) : new LazyFrozenPair(w);
    const bias = options.bias;
    this.bias = bias === undefined ? null : bias instanceof Float32Array ? tf.tensor1d(bias, 'float32') : bias;

    const init = LoraDense.initialFactors(variant, n, m, r, options.seed ?? 0);
    this.aT = variant === 'lora' ? variableFrom(transposed(init.A, r, n)) : null;
    this.bT = variant === 'fedsb' ? null : variableFrom(transposed(init.B, m, r));
    this.rT = variant === 'fedsb' ? variableFrom(transposed(init.R!, r, r)) : null;
    if (variant !== 'lora') this.frozenA = makeFrozenPair(init.A, r, n);
    if (variant === 'fedsb') this.frozenB = makeFrozenPair(init.B, m, r);

    this.w0Matmul = frozenMatmul(() => this.w0);
    this.aMatmul = frozenMatmul(() => this.frozenA!);
    this.bMatmul = frozenMatmul(() => this.frozenB!);
  }

  /** The factors a fresh layer starts from (see `LoraDenseOptions.seed`), in PEFT layout. */
  static initialFactors(variant: AdapterVariant, n: number, m: number, r: number, seed: number): { A: Float32Array; B: Float32Array; R?: Float32Array } {
    const A = kaimingUniformA(r, n, seed);
    if (variant === 'fedsb') return { A, B: seededUniform(m, r, 1 / Math.sqrt(r), seed + 1), R: new Float32Array(r * r) };
    return { A, B: new Float32Array(m * r) };
  }

  /** The variables an optimizer updates: [A^T, B^T] for `lora`, [B^T] for `ffa`, [R^T] for `fedsb`. */
  trainableVariables(): tf.Variable[] {
    this.assertLive();
    return [this.aT, this.bT, this.rT].filter((v): v is tf.Variable => v !== null);
  }

  /** The PEFT name of each trainable variable's factor, parallel to `trainableVariables()`. */
  trainableFactorNames(): Array<'A' | 'B' | 'R'> {
    return this.variant === 'lora' ? ['A', 'B'] : this.variant === 'ffa' ? ['B'] : ['R'];
  }

  /**
   * y = x W0^T + b + s ((x A^T) R^T) B^T.
   * @param x [..., n] (any leading dimensions; the first counts examples for a gradient tap)
   * @returns [..., m]; the caller owns it
   */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertLive();
    const n = this.inFeatures;
    if (x.rank < 2 || x.shape[x.rank - 1] !== n) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `LoRA module '${this.path}': input must be [..., ${n}], got [${x.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const examples = x.shape[0];
      const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, n])) as tf.Tensor2D;
      const explicit = avoidTransposeFlags();
      let y: tf.Tensor2D = this.baseTap !== null ? this.baseTap.op(x2, this.baseTap.probe)
        : explicit ? this.w0Matmul(x2) : tf.matMul(x2, this.w0.backward, false, true);
      if (this.bias !== null) y = tf.add(y, this.bias);
      let h: tf.Tensor2D = this.aT !== null ? this.trainable(x2, this.aT, examples)
        : explicit ? this.aMatmul(x2) : tf.matMul(x2, this.frozenA!.backward, false, true);
      h = tf.mul(h, this.scaling) as tf.Tensor2D;
      if (this.rT !== null) h = this.trainable(h, this.rT, examples);
      const low = this.bT !== null ? this.trainable(h, this.bT, examples)
        : explicit ? this.bMatmul(h) : tf.matMul(h, this.frozenB!.backward, false, true);
      y = tf.add(y, low);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }

  /**
   * Sets factors from PEFT-layout arrays (A [r, n], B [m, r], R [r, r]); absent ones are kept.
   * Frozen factors may be set too (FFA's shared A, Fed-SB's A and B from the coordinator).
   * @throws FL_ERR_ADAPTER_LAYOUT when a length is wrong or R is given to a non-Fed-SB layer
   */
  setFactors(factors: ModuleFactors): void {
    this.assertLive();
    const { inFeatures: n, outFeatures: m, rank: r } = this;
    const where = `LoRA module '${this.path}'`;
    if (factors.A !== undefined) {
      expectLength(where, 'A', factors.A, r * n, [r, n], 'FL_ERR_ADAPTER_LAYOUT');
      if (this.aT !== null) assignTransposed(this.aT, factors.A, r, n);
      else this.frozenA = replacePair(this.frozenA, factors.A, r, n);
    }
    if (factors.B !== undefined) {
      expectLength(where, 'B', factors.B, m * r, [m, r], 'FL_ERR_ADAPTER_LAYOUT');
      if (this.bT !== null) assignTransposed(this.bT, factors.B, m, r);
      else this.frozenB = replacePair(this.frozenB, factors.B, m, r);
    }
    if (factors.R !== undefined) {
      if (this.rT === null) {
        throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${where}: R is a Fed-SB factor, but this layer's variant is '${this.variant}'`);
      }
      expectLength(where, 'R', factors.R, r * r, [r, r], 'FL_ERR_ADAPTER_LAYOUT');
      assignTransposed(this.rT, factors.R, r, r);
    }
  }

  /**
   * The factors in PEFT layout, as fresh arrays, read asynchronously from the device.
   * @param which `trainable`: only the trained ones (lora: A, B; ffa: B; fedsb: R), what a client
   *   sends; `all`: every factor of the variant (fedsb adds A, B; ffa adds A). @default 'all'
   */
  async readFactors(which: 'all' | 'trainable' = 'all'): Promise<ModuleFactors> {
    this.assertLive();
    const { inFeatures: n, outFeatures: m, rank: r } = this;
    const wantAll = which === 'all';
    // Start every read before awaiting any, so a GPU backend maps the buffers in one go.
    const reads: { A?: Promise<Float32Array>; B?: Promise<Float32Array>; R?: Promise<Float32Array> } = {};
    if (this.aT !== null) reads.A = readTransposed(this.aT, n, r);
    else if (wantAll) reads.A = readValues(this.frozenA!.backward);
    if (this.bT !== null) reads.B = readTransposed(this.bT, r, m);
    else if (wantAll) reads.B = readValues(this.frozenB!.backward);
    if (this.rT !== null) reads.R = readTransposed(this.rT, r, r);
    const out: { A?: Float32Array; B?: Float32Array; R?: Float32Array } = {};
    if (reads.A !== undefined) out.A = await reads.A;
    if (reads.B !== undefined) out.B = await reads.B;
    if (reads.R !== undefined) out.R = await reads.R;
    return out;
  }

  /** The frozen W0 [m, n] in the checkpoint layout, as a fresh array read asynchronously. */
  async readBaseWeight(): Promise<Float32Array> {
    this.assertLive();
    return readValues(this.w0.backward);
  }

  /** The frozen W0 [m, n] as a new tensor on the device (the caller disposes it): no readback. */
  baseWeightTensor(): tf.Tensor2D {
    this.assertLive();
    return this.w0.backward.clone();
  }

  /**
   * FLoRA's merge (docs/strategies.md, "flora"): W0 <- W0 + s * Bstack @ Astack, then a fresh
   * adapter: the layer's factors go back to their initial values for `seed` (for `lora`: A
   * Kaiming-uniform, B = 0), so the layer computes exactly the merged base.
   * @param bStack [m, K], K = sum of the clients' ranks
   * @param aStack [K, n] (the clients' weights p_k already on the rows of A)
   * @param s the stacked adapter's one scaling alpha / r
   * @param seed seed of the fresh factors; give each round its own
   */
  mergeStack(bStack: Float32Array, aStack: Float32Array, s: number, seed: number): void {
    this.assertLive();
    const { inFeatures: n, outFeatures: m } = this;
    const where = `LoRA module '${this.path}' (FLoRA merge)`;
    if (bStack.length % m !== 0 || bStack.length === 0) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${where}: Bstack must be [${m}, K], got ${bStack.length} values`);
    }
    const k = bStack.length / m;
    expectLength(where, 'Bstack', bStack, m * k, [m, k]);
    expectLength(where, 'Astack', aStack, k * n, [k, n]);
    if (!Number.isFinite(s)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${where}: scaling must be finite, got ${s}`);
    const merged = tf.tidy(() => {
      const delta = tf.matMul(tf.tensor2d(bStack, [m, k]), tf.tensor2d(aStack, [k, n]));
      return tf.add(this.w0.backward, tf.mul(delta, s)) as tf.Tensor2D;
    });
    const old = this.w0;
    this.w0 = new LazyFrozenPair(merged);
    old.dispose();
    this.setFactors(LoraDense.initialFactors(this.variant, n, m, this.rank, seed));
  }

  /**
   * Routes the trainable matmuls through a gradient tap (per-example norms for DP-SGD) or back
   * to plain matmuls (`null`).
   */
  setGradientTap(tap: GradientTap | null): void {
    this.tap = tap;
  }

  /**
   * Reports, during backward passes, the frozen matmul's input x [rows, n] and output gradient
   * dy [rows, m] (so dL/dW0 = dy^T x, Fed-SB's initial gradient), or stops (`null`). The caller
   * differentiates against `probe` (a scalar variable), which makes tfjs run this layer's backward
   * pass even when nothing trainable lies before it.
   * @param onGrad receives the tensors during the backward pass; they are freed after it unless kept
   */
  setBaseGradientTap(tap: { probe: tf.Variable; onGrad: (x: tf.Tensor2D, dy: tf.Tensor2D) => void } | null): void {
    this.baseTap = tap === null ? null : { probe: tap.probe, op: probedFrozenMatmul(() => this.w0, tap.onGrad) };
  }

  /** Frees every tensor of the layer; later calls throw. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const owned: tf.Tensor[] = [];
    for (const t of [this.bias, this.aT, this.bT, this.rT]) if (t !== null) owned.push(t);
    tf.dispose(owned);
    for (const p of [this.w0, this.frozenA, this.frozenB]) p?.dispose();
  }

  private trainable(x: tf.Tensor2D, v: tf.Variable, examples: number): tf.Tensor2D {
    return trainableMatmul(x, v, this.tap, examples);
  }

  private assertLive(): void {
    if (this.disposed) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `LoRA module '${this.path}' was disposed`);
  }
}

/** Checks a frozen value given as an array (length, finiteness) or as a tensor (shape). */
function expectValues(where: string, name: string, values: Float32Array | tf.Tensor, shape: number[]): void {
  if (values instanceof Float32Array) {
    expectLength(where, name, values, shape.reduce((a, b) => a * b, 1), shape);
    return;
  }
  if (!(values instanceof tf.Tensor) || values.dtype !== 'float32' || values.shape.join() !== shape.join()) {
    const got = values instanceof tf.Tensor ? `a ${values.dtype} tensor [${values.shape.join(', ')}]` : typeof values;
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${where}: ${name} must be a float32 [${shape.join(', ')}] Float32Array or tensor, got ${got}`);
  }
}

/** Checks type, length and finiteness (a NaN in a factor or a stack would poison every later step). */
function expectLength(
  where: string, name: string, values: Float32Array, expected: number, shape: number[],
  code: 'FL_ERR_SHAPE_MISMATCH' | 'FL_ERR_ADAPTER_LAYOUT' = 'FL_ERR_SHAPE_MISMATCH',
): void {
  if (!(values instanceof Float32Array)) {
    throw new FedloraError(code, `${where}: ${name} must be a Float32Array`);
  }
  if (values.length !== expected) {
    throw new FedloraError(code, `${where}: ${name} must be [${shape.join(', ')}] = ${expected} values, got ${values.length}`);
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) throw new FedloraError(code, `${where}: ${name} holds ${values[i]} at index ${i}; values must be finite`);
  }
}

/** Row-major [rows, cols] -> its transpose [cols, rows], row-major. */
function transposed(values: Float32Array, rows: number, cols: number): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(tf.tensor2d(values, [rows, cols], 'float32')) as tf.Tensor2D);
}

function assignTransposed(v: tf.Variable, values: Float32Array, rows: number, cols: number): void {
  const t = transposed(values, rows, cols);
  v.assign(t);
  t.dispose();
}

/** Reads a variable stored [rows, cols] as its transpose [cols, rows], asynchronously. */
async function readTransposed(v: tf.Variable, rows: number, cols: number): Promise<Float32Array> {
  const t = tf.tidy(() => tf.transpose(tf.reshape(v, [rows, cols])));
  try {
    return await t.data() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** A fresh copy of a float32 tensor's values, read asynchronously. */
async function readValues(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data() as Float32Array).slice();
}

function replacePair(old: LazyFrozenPair | null, values: Float32Array, rows: number, cols: number): LazyFrozenPair {
  const next = makeFrozenPair(values, rows, cols);
  old?.dispose();
  return next;
}
