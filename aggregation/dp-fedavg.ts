/**
 * User-level DP-FedAvg as a wrapper that is itself a Strategy (McMahan et al. 2018; Flower's
 * DifferentialPrivacyServerSideFixedClipping / ...AdaptiveClipping; docs/privacy.md, "Differential
 * privacy mechanisms"). For an inner strategy whose aggregate is a sum (fedavg, ffa, fedsb):
 *
 *   Delta_k = trainable_k - trainable_global          (the client's update of its trainable tensors)
 *   clip:    Delta_k <- Delta_k * min(1, C / ||Delta_k||_2)     (flat clipping, privacy/clipping.ts)
 *   sum, add N(0, (z C)^2) per coordinate (privacy/gaussian.ts, ChaCha20 CSPRNG; drawn when the round
 *   opens, see DpFedAvgRound), divide by n:
 *   trainable_global <- trainable_global + (sum_k Delta_k + noise) / n
 *
 * n is the number of sampled clients (options.sampledClients, else the updates received). Weights
 * are uniform: example counts would change each client's sensitivity, so they are ignored here.
 * The noise on the average has std z C / n.
 *
 * Adaptive clipping (Andrew et al. 2021), as an option: each client contributes the bit
 * b_k = [||Delta_k|| <= C]; b = (sum_k (b_k - 1/2) + N(0, sigma_b^2)) / n + 1/2 (centred: sensitivity
 * 1/2); next C = C exp(-eta_C (b - gamma)).
 * Defaults C0 = 0.1, gamma = 0.5, eta_C = 0.2, sigma_b = n / 20; the update's noise multiplier is
 * then z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), so the round as a whole keeps multiplier z. The next
 * C travels in GlobalState.dpClipNorm.
 *
 * flora is refused (FL_ERR_NOT_A_SUM): its stack keeps each client's factors apart, so there is no
 * sum to clip and noise; use client-side DP-SGD instead.
 */
import type { Adapter, AdapterVariant } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { requireNonNegative, requirePositive } from '../privacy/argument-checks.js';
import { nextClipNorm as nextClipNormAfter, noisyUnclippedFraction, updateNoiseMultiplier } from '../privacy/adaptive-clipping.js';
import { clipFactor } from '../privacy/clipping.js';
import { addGaussianNoise, standardNormalBlocks } from '../privacy/gaussian.js';
import { clippedSum, type ClippedSum } from './clipped-sum.js';
import { allFinite, refuseNonFinite } from './validate-update.js';
import { cryptoRandomSource, type RandomSource } from '../privacy/random.js';
import type {
  AggregationReport,
  ClientInfo,
  ClientPlan,
  ClientUpdate,
  FactorName,
  GlobalState,
  JobSpec,
  RoundAggregation,
  RoundResult,
  Strategy,
  StrategyName,
  SummedDelta,
  TrainableVector,
} from './strategy.js';

export interface AdaptiveClippingOptions {
  /** gamma, the target fraction of unclipped updates, in (0, 1). @default 0.5 */
  readonly targetUnclippedQuantile?: number;
  /** eta_C, the geometric learning rate of C. @default 0.2 */
  readonly learningRate?: number;
  /** sigma_b, the std of the noise on the count of unclipped updates. @default n / 20 */
  readonly countNoiseStd?: number;
}

export interface DpFedAvgOptions {
  /** z, the noise multiplier: noise std on the sum is z C. Finite and >= 0 (0: clipping only). */
  readonly noiseMultiplier: number;
  /** C, the clipping norm (the initial C0 with adaptive clipping). @default 0.1 */
  readonly clipNorm?: number;
  /** n, the number of clients sampled per round (the divisor). @default the number of updates received */
  readonly sampledClients?: number;
  /** Adapt C each round (Andrew et al. 2021); off when absent. */
  readonly adaptive?: AdaptiveClippingOptions;
  /** Uniform bits for the noise. @default the ChaCha20 CSPRNG (privacy/random.ts); a seeded source only in tests */
  readonly random?: RandomSource;
}

export interface DpRoundReport {
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  /** The noise multiplier applied to the update (z_Delta with adaptive clipping, else z). */
  readonly updateNoiseMultiplier: number;
  readonly sampledClients: number;
  /** std of the noise on each coordinate of the averaged update: z_Delta C / n. */
  readonly noiseStdOnAverage: number;
  /** Updates whose norm was above C before clipping. */
  readonly clippedUpdates: number;
  /** Adaptive clipping: the noisy fraction b of unclipped updates and the next C. */
  readonly unclippedFraction?: number;
  readonly nextClipNorm?: number;
}

export type DpAggregationReport = AggregationReport & { readonly dp: DpRoundReport };

/** The noise multiplier left for the update when sigma_b is spent on the count: privacy/'s, re-exported. */
export { updateNoiseMultiplier };

export class DpFedAvgStrategy implements Strategy {
  readonly name: StrategyName;
  readonly variant: AdapterVariant;
  readonly trainable: readonly FactorName[];
  readonly aggregateIsSum = true;
  private readonly z: number;
  private readonly clipNorm: number;
  private readonly random: RandomSource;

  /**
   * @throws FL_ERR_NOT_A_SUM for an inner strategy whose aggregate is not a sum (flora)
   * @throws FL_ERR_PRIVACY_ARGUMENT for out-of-range parameters
   */
  constructor(
    private readonly inner: Strategy,
    private readonly options: DpFedAvgOptions,
  ) {
    if (!inner.aggregateIsSum) {
      throw new FedloraError(
        'FL_ERR_NOT_A_SUM',
        `DP-FedAvg cannot wrap '${inner.name}': its aggregate is not a sum of client updates (FLoRA's stack keeps each client's factors apart), so there is nothing to clip and noise on the coordinator; use client-side DP-SGD (sample-level DP) with ${inner.name}`,
        { strategy: inner.name },
      );
    }
    this.name = inner.name;
    this.variant = inner.variant;
    this.trainable = inner.trainable;
    requireNonNegative(options.noiseMultiplier, 'noiseMultiplier');
    this.z = options.noiseMultiplier;
    this.clipNorm = options.clipNorm ?? 0.1;
    requirePositive(this.clipNorm, 'clipNorm');
    if (options.sampledClients !== undefined && !(Number.isInteger(options.sampledClients) && options.sampledClients >= 1)) {
      throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `sampledClients must be an integer >= 1, got ${options.sampledClients}`);
    }
    const a = options.adaptive;
    if (a !== undefined) {
      const gamma = a.targetUnclippedQuantile ?? 0.5;
      if (!(gamma > 0 && gamma < 1)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `adaptive.targetUnclippedQuantile must be in (0, 1), got ${gamma}`);
      requirePositive(a.learningRate ?? 0.2, 'adaptive.learningRate');
      if (a.countNoiseStd !== undefined) requireNonNegative(a.countNoiseStd, 'adaptive.countNoiseStd');
    }
    this.random = options.random ?? cryptoRandomSource();
  }

  init(spec: JobSpec, seed: string): GlobalState {
    const state = this.inner.init(spec, seed);
    return this.options.adaptive ? { ...state, dpClipNorm: this.clipNorm } : state;
  }

  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[] {
    return this.inner.plan(state, clients);
  }

  /** @param state required: deltas are taken against the global trainable tensors */
  begin(state: GlobalState | null): RoundAggregation {
    if (state?.adapter == null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `DP-FedAvg (${this.name}): needs the global state the clients trained from, to take their deltas`);
    const clipNorm = this.options.adaptive ? (state.dpClipNorm ?? this.clipNorm) : this.clipNorm;
    return new DpFedAvgRound(this.inner, state, clipNorm, this.z, this.options, this.random);
  }

  checkUpdate(state: GlobalState, update: ClientUpdate): void {
    this.inner.checkUpdate(state, update);
  }

  trainableVectors(adapter: Adapter): TrainableVector[] {
    return this.inner.trainableVectors(adapter);
  }

  /**
   * For sums of updates the clients clipped themselves (client-side clipping, e.g. under secure
   * aggregation): adds N(0, (z C)^2) to the sum, then the inner step. C is this round's clip norm:
   * with adaptive clipping the adapted one in `state.dpClipNorm` (what {@link begin} clips to), not
   * C0. The clients must have clipped to the same C, or the guarantee does not hold.
   */
  aggregateSummedDeltas(state: GlobalState, sums: readonly SummedDelta[], count: number): RoundResult {
    const n = this.options.sampledClients ?? count;
    const clipNorm = this.options.adaptive ? (state.dpClipNorm ?? this.clipNorm) : this.clipNorm;
    const noisy = sums.map((s) => {
      const data = Float64Array.from(s.data);
      addGaussianNoise(data, this.z * clipNorm, this.random);
      return { ...s, data };
    });
    return this.inner.aggregateSummedDeltas(state, noisy, n);
  }
}

class DpFedAvgRound implements RoundAggregation {
  private readonly global: TrainableVector[];
  /** sum_k s_k x_k per trainable tensor (s_k the client's clip factor) and ||x_k - g||, by the SIMD kernels. */
  private readonly sums: ClippedSum;
  /** sum_k s_k: finish subtracts (sum_k s_k) g once, giving sum_k s_k (x_k - g). */
  private totalScale = 0;
  private unclipped = 0;
  private clipped = 0;
  count = 0;
  private finished = false;

  constructor(
    private readonly inner: Strategy,
    private readonly state: GlobalState,
    private readonly clipNorm: number,
    private readonly z: number,
    private readonly options: DpFedAvgOptions,
    private readonly random: RandomSource,
  ) {
    this.global = inner.trainableVectors(state.adapter!);
    this.sums = clippedSum(this.global.map((g) => g.data));
    // The noise does not depend on the updates: draw it now, when the round opens and its clients
    // start training, so that finish() (the round's latency once the last update is in) only adds
    // it. Standard normals: the std may depend on the number of updates (adaptive clipping).
    this.noise = z === 0 ? null : this.global.map((g) => {
      const out = new Float64Array(g.data.length);
      standardNormalBlocks(out.length, (block, start) => out.set(block, start), random);
      return out;
    });
  }

  /** N(0, 1) per coordinate of each trainable vector, drawn in the constructor; null when z = 0. */
  private noise: Float64Array[] | null;

  add(update: ClientUpdate): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'DP-FedAvg: add() after finish()');
    // finiteness of the trainable factors is refused below, by the norm and the staged add
    this.inner.checkUpdate(this.state, update, { trainableFiniteChecked: true });
    const vectors = this.inner.trainableVectors(update.adapter);
    const byKey = new Map(vectors.map((v) => [`${v.path}\0${v.factor}`, v]));
    const mine = this.global.map((g) => {
      const v = byKey.get(`${g.path}\0${g.factor}`);
      if (v === undefined || v.data.length !== g.data.length) {
        throw new FedloraError(
          'FL_ERR_AGGREGATION_INPUT',
          `${update.source}: ${g.tensorName} has ${v?.data.length ?? 0} values but the global one has ${g.data.length}; DP-FedAvg takes deltas, so ranks must equal the global ones`,
          { source: update.source, tensor: g.tensorName },
        );
      }
      return v.data;
    });
    // Delta_k = x_k - g clipped to C: its norm in one pass, then s_k x_k staged into the sums (one
    // SIMD pass that also checks x_k is finite); no copy of Delta_k is made.
    const norm = Math.sqrt(this.sums.load(mine));
    if (!Number.isFinite(norm)) {
      const bad = mine.findIndex((x) => !allFinite(x));
      refuseNonFinite(update.source, this.global[bad]!.path, this.global[bad]!.factor);
    }
    const scale = clipFactor(norm, this.clipNorm);
    const bad = this.sums.stage(scale);
    if (bad >= 0) refuseNonFinite(update.source, this.global[bad]!.path, this.global[bad]!.factor);
    this.sums.commit();
    this.totalScale += scale;
    if (norm <= this.clipNorm) this.unclipped++;
    else this.clipped++;
    this.count++;
  }

  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'DP-FedAvg: finish() called twice');
    if (this.count === 0) throw new FedloraError('FL_ERR_NO_UPDATES', 'DP-FedAvg: the round has no updates to aggregate');
    this.finished = true;
    const n = this.options.sampledClients ?? this.count;
    const adaptive = this.options.adaptive;
    const countNoiseStd = adaptive ? (adaptive.countNoiseStd ?? n / 20) : 0;
    const zDelta = adaptive ? updateNoiseMultiplier(this.z, countNoiseStd) : this.z;
    const total = this.totalScale;
    const std = zDelta * this.clipNorm;
    const current = this.sums.current;
    const sums: SummedDelta[] = this.global.map((g, i) => {
      const data = current[i]!;
      const reference = g.data;
      // sum_k s_k x_k - (sum_k s_k) g + std z in one pass
      const z = this.noise?.[i];
      if (std === 0 || z === undefined) subtractScaled(data, reference, total);
      else subtractScaledAddNoise(data, reference, total, z, std);
      return { path: g.path, factor: g.factor, data };
    });
    const result = this.inner.aggregateSummedDeltas(this.state, sums, n);
    this.sums.release(); // the inner strategy copied them into the new state
    this.noise = null;
    let unclippedFraction: number | undefined;
    let nextClipNorm: number | undefined;
    if (adaptive) {
      // centred bits (sensitivity 1/2), which the z_Delta above assumes
      unclippedFraction = noisyUnclippedFraction(this.unclipped, this.count, n, countNoiseStd, this.random);
      nextClipNorm = nextClipNormAfter(this.clipNorm, unclippedFraction, {
        ...(adaptive.targetUnclippedQuantile !== undefined && { targetUnclippedQuantile: adaptive.targetUnclippedQuantile }),
        ...(adaptive.learningRate !== undefined && { clipLearningRate: adaptive.learningRate }),
      });
    }
    const dp: DpRoundReport = {
      clipNorm: this.clipNorm,
      noiseMultiplier: this.z,
      updateNoiseMultiplier: zDelta,
      sampledClients: n,
      noiseStdOnAverage: (zDelta * this.clipNorm) / n,
      clippedUpdates: this.clipped,
      ...(adaptive && { unclippedFraction, nextClipNorm }),
    };
    const report: DpAggregationReport = { ...result.report, clients: this.count, dp };
    const state: GlobalState = nextClipNorm === undefined ? result.state : { ...result.state, dpClipNorm: nextClipNorm };
    return { state, aggregate: result.aggregate, report };
  }
}

/** data[j] -= t * reference[j]. */
function subtractScaled(data: Float64Array, reference: Float32Array, t: number): void {
  for (let j = 0; j < data.length; j++) data[j] = data[j]! - t * reference[j]!;
}

/** data[j] = data[j] - t * reference[j] + std * z[j]. */
function subtractScaledAddNoise(data: Float64Array, reference: Float32Array, t: number, z: Float64Array, std: number): void {
  for (let j = 0; j < data.length; j++) data[j] = data[j]! - t * reference[j]! + std * z[j]!;
}
