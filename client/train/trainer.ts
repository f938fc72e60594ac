/**
 * The local trainer: epochs of seeded mini-batches, gradient accumulation, AdamW with a
 * learning-rate schedule; or DP-SGD steps (Poisson sampling at rate q, per-example clipping,
 * Gaussian noise) when `dp` is given. Deterministic for a seed on one backend, except DP noise
 * and sampling, which come from the CSPRNG unless a test passes its own source.
 *
 * Tensor ownership: every step frees what it creates (tf.tidy and explicit dispose); the
 * optimizer's moments are freed when `train` returns; test/client/train checks that
 * tf.memory().numTensors is flat across steps.
 */
import * as tf from '@tensorflow/tfjs';
import { clipSensitivity, poissonSample, privatizeClippedSum } from '../../privacy/dp-sgd.js';
import type { RandomSource } from '../../privacy/random.js';
import { FedloraError } from '../../shared/errors.js';
import { backendErrors } from '../backend.js';
import { disposeBatch, type ExampleSource } from '../data/batches.js';
import { SeededRandom } from '../data/seeded-random.js';
import type { TrainableModel } from '../lora/lora-model.js';
import { AdamW, type AdamWOptions } from './adamw.js';
import { clippedGradientSum, clipSpecFor, type DpClip, type DpClipMode } from './dp-sgd.js';
import { checkSchedule, learningRateAt, type ScheduleKind } from './schedule.js';
import type { ParallelGradients } from './train-worker-pool.js';

export interface DpSgdOptions {
  /** sigma: the noise standard deviation is sigma * clipNorm. */
  readonly noiseMultiplier: number;
  /**
   * C: each example's gradient (all trainable tensors together) is clipped to this L2 norm; or one
   * bound per LoRA factor ({ A, B }: DP-LoRA), for a sensitivity of sqrt(C_A^2 + C_B^2).
   */
  readonly clipNorm: DpClip;
  /** q: each example joins a step's batch with this probability. @default batchSize / examples */
  readonly samplingRate?: number;
  /** @default 'ghost' */
  readonly mode?: DpClipMode;
  /** Uniform bits for sampling and noise. @default the node:crypto CSPRNG (privacy/random.ts); tests only may pass a seeded one */
  readonly randomSource?: RandomSource;
}

export interface TrainOptions extends AdamWOptions {
  /** @default 1 */
  readonly epochs?: number;
  /** Examples per micro-batch (plain), or the expected batch size q n (DP). @default 32 */
  readonly batchSize?: number;
  /** Micro-batches per optimizer step (plain training only). @default 1 */
  readonly gradAccumulation?: number;
  /** Stop after this many optimizer steps. @default no limit */
  readonly maxSteps?: number;
  /** Peak learning rate. @default 1e-3 */
  readonly lr?: number;
  /** @default 'constant' */
  readonly schedule?: ScheduleKind;
  /** @default 0 */
  readonly warmupSteps?: number;
  /** Seed of the batch order. @default 0 */
  readonly seed?: number;
  /** Client-side DP-SGD; plain training when absent. */
  readonly dp?: DpSgdOptions;
  /** Called after every optimizer step. */
  readonly onProgress?: (p: TrainProgress) => void;
  /**
   * Data-parallel gradients: a TrainWorkerPool (train-worker-pool.ts) begun for this model and
   * source. Each micro-batch (DP: each sampled batch) is split across its threads and the
   * gradients summed once; the optimizer step and DP noise stay on this thread.
   * @default none: this thread alone
   */
  readonly parallel?: ParallelGradients;
}

export interface TrainProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly totalSteps: number;
  /** Examples processed so far. */
  readonly examples: number;
  /** Mean loss of this step's examples. */
  readonly loss: number;
  readonly lr: number;
  readonly examplesPerSecond: number;
}

export interface TrainResult {
  readonly steps: number;
  readonly examples: number;
  /** Mean loss of each optimizer step. */
  readonly losses: number[];
  readonly seconds: number;
  /** What the accountant books for DP-SGD: `steps` sampled Gaussian steps at rate q with noise multiplier sigma. */
  readonly dp?: {
    readonly steps: number; readonly q: number; readonly noiseMultiplier: number; readonly clipNorm: DpClip;
    /** The L2 sensitivity of one example: C, or sqrt(sum of the per-factor bounds squared); the noise std is noiseMultiplier times this. */
    readonly sensitivity: number;
    readonly expectedBatchSize: number; readonly unclippedFraction: number;
  };
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${name} must be a positive integer, got ${value}`);
  return value;
}

/** Trains the model's trainable variables on the source. */
export async function train(model: TrainableModel, source: ExampleSource, options: TrainOptions = {}): Promise<TrainResult> {
  if (source.size === 0) throw new FedloraError('FL_ERR_TRAINING', 'cannot train on an empty data set');
  const epochs = positiveInt(options.epochs ?? 1, 'epochs');
  const batchSize = positiveInt(options.batchSize ?? 32, 'batchSize');
  const accumulation = positiveInt(options.gradAccumulation ?? 1, 'gradAccumulation');
  const lr = options.lr ?? 1e-3;
  const optimizer = new AdamW(options);
  const vars = model.trainableVariables();
  if (vars.length === 0) throw new FedloraError('FL_ERR_TRAINING', 'the model has no trainable variables');
  const started = performance.now();
  const deviceErrorsBefore = backendErrors().length;
  try {
    const result = options.dp === undefined
      ? await trainPlain(model, source, vars, optimizer, { ...options, epochs, batchSize, accumulation, lr }, started)
      : await trainDp(model, source, vars, optimizer, { ...options, epochs, batchSize, lr, dp: options.dp }, started);
    const deviceErrors = backendErrors().slice(deviceErrorsBefore);
    if (deviceErrors.length > 0) {
      throw new FedloraError('FL_ERR_BACKEND', `the device reported errors during training, so its results cannot be trusted: ${deviceErrors.join('; ')}`, { errors: deviceErrors });
    }
    return result;
  } finally {
    optimizer.dispose();
  }
}

type Resolved = TrainOptions & { epochs: number; batchSize: number; lr: number };

async function trainPlain(
  model: TrainableModel, source: ExampleSource, vars: tf.Variable[], optimizer: AdamW,
  o: Resolved & { accumulation: number }, started: number,
): Promise<TrainResult> {
  const microPerEpoch = Math.ceil(source.size / o.batchSize);
  const stepsPerEpoch = Math.ceil(microPerEpoch / o.accumulation);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, stepsPerEpoch * o.epochs);
  const schedule = { lr: o.lr, kind: o.schedule ?? 'constant', warmupSteps: o.warmupSteps ?? 0, totalSteps };
  checkSchedule(schedule);
  const losses: number[] = [];
  let examples = 0;
  let step = 0;
  for (let epoch = 0; epoch < o.epochs && step < totalSteps; epoch++) {
    const order = new SeededRandom(o.seed ?? 0, `epoch:${epoch}`).shuffle(Int32Array.from({ length: source.size }, (_, i) => i));
    for (let first = 0; first < microPerEpoch && step < totalSteps; first += o.accumulation) {
      const micro = Array.from({ length: Math.min(o.accumulation, microPerEpoch - first) }, (_, k) =>
        order.subarray((first + k) * o.batchSize, Math.min(source.size, (first + k + 1) * o.batchSize)));
      const stepExamples = micro.reduce((s, m) => s + m.length, 0);
      let sum: tf.Tensor[] | null = null;
      let lossSum = 0;
      for (const idx of micro) {
        if (o.parallel !== undefined) {
          const { grads, loss } = await o.parallel.meanGradient(model, source, idx);
          const w = idx.length / stepExamples;
          const weighted = grads.map((g) => tf.mul(g, w));
          tf.dispose(grads);
          if (sum === null) sum = weighted;
          else {
            const prev: tf.Tensor[] = sum;
            sum = prev.map((s, i) => tf.add(s, weighted[i]!));
            tf.dispose([...prev, ...weighted]);
          }
          lossSum += loss * idx.length;
          continue;
        }
        const batch = source.batch(idx);
        try {
          const { value, grads } = tf.variableGrads(() => model.loss(batch), vars);
          // each micro-batch's mean gradient, weighted by its share of the step's examples
          const w = idx.length / stepExamples;
          const weighted = vars.map((v) => tf.mul(grads[v.name]!, w));
          tf.dispose(Object.values(grads));
          if (sum === null) sum = weighted;
          else {
            const prev: tf.Tensor[] = sum;
            sum = prev.map((s, i) => tf.add(s, weighted[i]!));
            tf.dispose([...prev, ...weighted]);
          }
          lossSum += (await value.data())[0]! * idx.length;
          value.dispose();
        } finally {
          disposeBatch(batch);
        }
      }
      const stepLr = learningRateAt(step, schedule);
      optimizer.applyGradients(vars, sum!, stepLr);
      o.parallel?.parametersChanged();
      tf.dispose(sum!);
      step += 1;
      examples += stepExamples;
      const loss = lossSum / stepExamples;
      if (!Number.isFinite(loss)) throw new FedloraError('FL_ERR_TRAINING', `the loss became ${loss} at step ${step} (lower the learning rate?)`);
      losses.push(loss);
      o.onProgress?.({ epoch: epoch + 1, epochs: o.epochs, step, totalSteps, examples, loss, lr: stepLr, examplesPerSecond: examples / ((performance.now() - started) / 1000) });
    }
  }
  return { steps: step, examples, losses, seconds: (performance.now() - started) / 1000 };
}

async function trainDp(
  model: TrainableModel, source: ExampleSource, vars: tf.Variable[], optimizer: AdamW,
  o: Resolved & { dp: DpSgdOptions }, started: number,
): Promise<TrainResult> {
  const n = source.size;
  const q = o.dp.samplingRate ?? Math.min(1, o.batchSize / n);
  if (!(q > 0 && q <= 1)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `DP sampling rate q must be in (0, 1], got ${q}`);
  const sensitivity = clipSensitivity(clipSpecFor(model, o.dp.clipNorm));
  const expectedBatchSize = q * n;
  // an epoch is 1/q steps in expectation
  const stepsPerEpoch = Math.max(1, Math.round(1 / q));
  const totalSteps = Math.min(o.maxSteps ?? Infinity, stepsPerEpoch * o.epochs);
  const schedule = { lr: o.lr, kind: o.schedule ?? 'constant', warmupSteps: o.warmupSteps ?? 0, totalSteps };
  checkSchedule(schedule);
  const losses: number[] = [];
  let examples = 0;
  let unclipped = 0;
  for (let step = 0; step < totalSteps; step++) {
    const sample = o.dp.randomSource === undefined ? poissonSample(n, q) : poissonSample(n, q, o.dp.randomSource);
    const clipped = sample.length === 0
      ? { sums: vars.map((v) => new Float64Array(v.size)), lossSum: 0, unclipped: 0 }
      : o.parallel !== undefined
        ? await o.parallel.clippedSum(model, source, sample, o.dp.clipNorm, o.dp.mode ?? 'ghost', o.batchSize)
        : await clippedGradientSum(model, source, sample, o.dp.clipNorm, o.dp.mode ?? 'ghost', o.batchSize);
    // the noise is added here, once, to the sum of every thread's clipped gradients
    const noisy = privatizeClippedSum(clipped.sums, {
      sensitivity, noiseMultiplier: o.dp.noiseMultiplier, expectedBatchSize,
      ...(o.dp.randomSource === undefined ? {} : { source: o.dp.randomSource }),
    });
    const grads = vars.map((v, i) => tf.tensor(noisy[i]!, v.shape));
    const stepLr = learningRateAt(step, schedule);
    optimizer.applyGradients(vars, grads, stepLr);
    o.parallel?.parametersChanged();
    tf.dispose(grads);
    examples += sample.length;
    unclipped += clipped.unclipped;
    const loss = sample.length === 0 ? NaN : clipped.lossSum / sample.length;
    losses.push(loss);
    o.onProgress?.({
      epoch: Math.floor(step / stepsPerEpoch) + 1, epochs: o.epochs, step: step + 1, totalSteps, examples, loss, lr: stepLr,
      examplesPerSecond: examples / ((performance.now() - started) / 1000),
    });
  }
  return {
    steps: totalSteps, examples, losses, seconds: (performance.now() - started) / 1000,
    dp: { steps: totalSteps, q, noiseMultiplier: o.dp.noiseMultiplier, clipNorm: o.dp.clipNorm, sensitivity, expectedBatchSize, unclippedFraction: examples === 0 ? 1 : unclipped / examples },
  };
}
