/**
 * Fed-SB's federated initialisation phase (docs/strategies.md, "fedsb"; LoRA-SB): each selected client
 * sends G_k = sum over its ~50 local samples of dL/dW0 per module; the global G is the plain sum
 * sum_k G_k (the reference's G is one sum over all samples, so client sums add without weights),
 * kept in float64, and `fedsbInitFromGradient` turns it into the frozen A, B and R0.
 */
import { FedloraError } from '../shared/errors.js';
import type { ClientUpdate, JobSpec, RoundAggregation, RoundResult } from './strategy.js';
import { fedsbInitFromGradient } from './fedsb.js';

/**
 * eta of LoRA-SB's init, G' = -eta sign(G): the learning rate of the FIRST step of training, as the
 * reference takes it from its schedule: lr / warmupSteps under a linear warmup, else lr.
 */
export function fedsbInitStep(training: { readonly lr: number; readonly warmupSteps: number }): number {
  return training.warmupSteps > 0 ? training.lr / training.warmupSteps : training.lr;
}

/** Sums the clients' gradients of the init phase; finish() gives the initial global state. */
export class FedSbGradientSum implements RoundAggregation {
  private readonly sums = new Map<string, Float64Array>();
  private totalExamples = 0;
  count = 0;
  private finished = false;

  /**
   * @param spec the strategy spec (modules with rank and alpha) of the job
   * @param seed the job's seed (the SVD's randomized fallback)
   * @param eta the step of the approximated full fine-tuning update ({@link fedsbInitStep})
   */
  constructor(
    private readonly spec: JobSpec,
    private readonly seed: string,
    private readonly eta: number,
  ) {
    for (const m of spec.modules) this.sums.set(m.path, new Float64Array(m.outFeatures * m.inFeatures));
  }

  /** Adds one client's gradients; refuses (sum unchanged) a missing, extra or mis-sized module. */
  add(update: ClientUpdate): void {
    const g = update.gradients;
    if (g === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${update.source}: the init phase needs gradient tensors (fedsb_G)`);
    this.addGradients(g, update.source, update.numExamples, 1);
  }

  /** Adds a sum of `clients` clients' gradients at once (the unmasked secure sum; examples unknown). */
  addSum(gradients: ReadonlyMap<string, Float32Array>, source: string, clients: number): void {
    this.addGradients(gradients, source, 0, clients);
  }

  private addGradients(g: ReadonlyMap<string, Float32Array>, source: string, examples: number, clients: number): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb init: add() after finish()');
    for (const [path, sum] of this.sums) {
      const x = g.get(path);
      if (x === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: no gradient for module '${path}'`, { module: path });
      if (x.length !== sum.length) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${source}: gradient of '${path}' has ${x.length} values, expected ${sum.length}`, { module: path });
      for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) throw new FedloraError('FL_ERR_UPDATE_NOT_FINITE', `${source}: gradient of '${path}' holds ${x[i]} at flat index ${i}`, { module: path, index: i });
    }
    for (const path of g.keys()) if (!this.sums.has(path)) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: gradient for unknown module '${path}'`, { module: path });
    for (const [path, sum] of this.sums) {
      const x = g.get(path)!;
      for (let i = 0; i < x.length; i++) sum[i] = sum[i]! + x[i]!;
    }
    this.totalExamples += examples;
    this.count += clients;
  }

  /** The initial global state (round 0); its `aggregate` is the initial adapter. */
  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb init: finish() called twice');
    if (this.count === 0) throw new FedloraError('FL_ERR_NO_UPDATES', 'fedsb init: no client sent its gradient');
    this.finished = true;
    // Only the sign of G is used: rounding the float64 sum to float32 keeps every sign (bar values below 1e-45).
    const gradients = new Map([...this.sums].map(([p, s]) => [p, Float32Array.from(s)]));
    const { state } = fedsbInitFromGradient(this.spec, this.seed, gradients, this.eta);
    return { state, aggregate: state.adapter!, report: { strategy: 'fedsb', clients: this.count, totalExamples: this.totalExamples } };
  }
}
