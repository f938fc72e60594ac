/**
 * Fed-SB: average R (Singhal et al., 2025; LoRA-SB; docs/strategies.md, "fedsb"). The layer computes
 * y = W0 x + s B (R (A x)) with A [r, n] and B [m, r] frozen and only R [r, r] trained, so
 * R <- sum_k p_k (s_k / s) R_k is exact: s B R_avg A = sum_k p_k s_k B R_k A. Per round each client
 * sends r^2 numbers per module, whatever m, n and the number of clients.
 *
 * Initialisation (LoRA-SB): from a summed gradient G [m, n] of the loss w.r.t. W0,
 * G' = -eta sign(G), G'^T ~ U S V^T (rank-r truncated SVD), A = U^T, B = V, R0 = diag(S), alpha = r
 * (s = 1): the adapter starts as the best rank-r copy of the first full-fine-tuning step. The gradient
 * is data: whoever sums it must count it in the privacy budget. Fallback without a gradient: A with
 * orthonormal rows, B with orthonormal columns (seeded), R0 = 0, so training starts from W0 unchanged.
 * The frozen A and B are sent to clients (not regenerated), so the fallback needs no bit-exact
 * reproducibility across machines, though it is seeded.
 *
 * An update that carries A or B must carry exactly the global ones (SHA-256 of the bytes), else
 * FL_ERR_FROZEN_MISMATCH. State: `adapter` = frozen A, B and the averaged R (variant `fedsb`).
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { checkFrozenFactors } from './frozen-check.js';
import { orthonormalColumns, truncatedSvdDense } from './low-rank.js';
import { stagedZeros, toFloat32, type StagedSum } from './running-sum.js';
import { SeededRandom } from './seeded-random.js';
import type { ClientInfo, ClientPlan, ClientUpdate, GlobalState, JobSpec, RoundAggregation, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';
import { applySummedDeltas, trainableVectorsOf } from './trainable-vectors.js';
import { checkJobSpec, checkUpdate, refuseNonFinite, tensorName } from './validate-update.js';

const FEDSB_RULES = { required: ['R'], optional: ['A', 'B'], sameRank: true } as const;
const FEDSB_HINT = 'fedsb trains R only: A and B must be the global ones';

/**
 * Fed-SB's own rule, after the common checks of validate-update.ts checkJobSpec: A [r, n] with
 * orthonormal rows and B [m, r] with orthonormal columns need r <= min(m, n) (docs/strategies.md, "fedsb: average R", Ranks).
 * @throws FL_ERR_INVALID_ARGUMENT naming the module
 */
function checkRankFits(modules: readonly AdapterModule[]): void {
  for (const m of modules) {
    if (m.rank > Math.min(m.outFeatures, m.inFeatures)) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `fedsb: module '${m.path}': rank ${m.rank} exceeds min(m, n) = ${Math.min(m.outFeatures, m.inFeatures)}, so A and B cannot be orthonormal`);
    }
  }
}

function fedsbAdapter(spec: JobSpec, factors: Map<string, ModuleFactors>): Adapter {
  // alpha = r: s = 1, as LoRA-SB sets it.
  const modules = spec.modules.map((m) => ({ ...m, alpha: m.rank }));
  return { layout: { variant: 'fedsb', modules, baseModelName: spec.baseModelName, baseModelSha256: spec.baseModelSha256 }, factors };
}

/**
 * The fallback initial state: orthonormal A rows and B columns from QR of seeded uniform
 * matrices, R0 = 0, alpha = r.
 */
export function fedsbRandomInit(spec: JobSpec, seed: string): GlobalState {
  checkJobSpec('fedsb', spec.modules);
  checkRankFits(spec.modules);
  const factors = new Map<string, ModuleFactors>();
  for (const m of spec.modules) {
    const rng = SeededRandom.fromSeed('fedlora/fedsb/orthonormal/v1', seed, m.path);
    const At = orthonormalColumns(rng.uniformArray(m.inFeatures * m.rank, 1), m.inFeatures, m.rank); // [n, r]
    const B = orthonormalColumns(rng.uniformArray(m.outFeatures * m.rank, 1), m.outFeatures, m.rank); // [m, r]
    const A = new Float32Array(m.rank * m.inFeatures);
    for (let j = 0; j < m.inFeatures; j++) for (let c = 0; c < m.rank; c++) A[c * m.inFeatures + j] = At[j * m.rank + c]!;
    factors.set(m.path, { A, B: Float32Array.from(B), R: new Float32Array(m.rank * m.rank) });
  }
  return { strategy: 'fedsb', round: 0, seed, spec, adapter: fedsbAdapter(spec, factors), lastRoundUpdate: null };
}

export interface FedSbGradientInit {
  readonly state: GlobalState;
  /** Per module: `exact` SVD or `randomized` subspace iteration (large modules). */
  readonly svdMethod: Readonly<Record<string, 'exact' | 'randomized'>>;
}

/**
 * LoRA-SB's initialisation from a summed gradient: G' = -eta sign(G); rank-r truncated SVD
 * G'^T ~ U S V^T; A = U^T [r, n], B = V [m, r], R0 = diag(S), alpha = r. Then s B R0 A is the best
 * rank-r approximation of G' (exactly so when the SVD is exact).
 * @param gradients per module path, G [m, n] row-major (the gradient w.r.t. W0, summed over clients)
 * @param eta the step of the approximated full fine-tuning update; > 0
 */
export function fedsbInitFromGradient(spec: JobSpec, seed: string, gradients: ReadonlyMap<string, Float32Array>, eta: number): FedSbGradientInit {
  checkJobSpec('fedsb', spec.modules);
  checkRankFits(spec.modules);
  if (!(Number.isFinite(eta) && eta > 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `fedsb: eta must be a finite number > 0, got ${eta}`);
  const factors = new Map<string, ModuleFactors>();
  const svdMethod: Record<string, 'exact' | 'randomized'> = {};
  for (const m of spec.modules) {
    const G = gradients.get(m.path);
    const { outFeatures: rows, inFeatures: n, rank: r } = m;
    if (G === undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `fedsb: no gradient for module '${m.path}'`);
    if (G.length !== rows * n) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `fedsb: gradient of '${m.path}' has ${G.length} values, expected [${rows}, ${n}]`);
    const signed = new Float64Array(G.length);
    for (let i = 0; i < G.length; i++) {
      const g = G[i]!;
      if (Number.isNaN(g)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `fedsb: gradient of '${m.path}' holds NaN`);
      signed[i] = g > 0 ? -eta : g < 0 ? eta : 0;
    }
    // G' = L S Rv^T (L [m, r], Rv [n, r]) is the transpose of G'^T = Rv S L^T: U = Rv, V = L.
    const svd = truncatedSvdDense(signed, rows, n, r, SeededRandom.fromSeed('fedlora/fedsb/gradient-svd/v1', seed, m.path));
    svdMethod[m.path] = svd.method;
    const A = new Float32Array(r * n);
    for (let j = 0; j < n; j++) for (let c = 0; c < r; c++) A[c * n + j] = svd.V[j * r + c]!;
    const R = new Float32Array(r * r);
    for (let c = 0; c < r; c++) R[c * r + c] = svd.S[c]!;
    factors.set(m.path, { A, B: Float32Array.from(svd.U), R });
  }
  return { state: { strategy: 'fedsb', round: 0, seed, spec, adapter: fedsbAdapter(spec, factors), lastRoundUpdate: null }, svdMethod };
}

export class FedSbStrategy implements Strategy {
  readonly name = 'fedsb' as const;
  readonly variant = 'fedsb' as const;
  readonly trainable = ['R'] as const;
  readonly aggregateIsSum = true;

  /** The random orthonormal fallback; use fedsbInitFromGradient for LoRA-SB's initialisation. */
  init(spec: JobSpec, seed: string): GlobalState {
    return fedsbRandomInit(spec, seed);
  }

  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[] {
    const modules = state.adapter?.layout.modules ?? state.spec.modules;
    return clients.map((c) => ({ clientId: c.id, modules, variant: 'fedsb', trainable: this.trainable, start: 'global', mergeFirst: null }));
  }

  begin(state: GlobalState | null): RoundAggregation {
    return new FedSbRound(state);
  }

  checkUpdate(state: GlobalState, update: ClientUpdate, options: { readonly trainableFiniteChecked?: boolean } = {}): void {
    if (state.adapter === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb: the global state has no adapter (frozen A and B)');
    checkUpdate(update, state.adapter.layout, options.trainableFiniteChecked === true ? { ...FEDSB_RULES, finiteCheckedByCaller: ['R'] } : FEDSB_RULES);
    checkFrozenFactors(update, state.adapter, ['A', 'B'], FEDSB_HINT);
  }

  trainableVectors(adapter: Adapter): TrainableVector[] {
    return trainableVectorsOf(adapter, this.trainable);
  }

  aggregateSummedDeltas(state: GlobalState, sums: readonly SummedDelta[], count: number): RoundResult {
    return applySummedDeltas('fedsb', state, this.trainable, sums, count);
  }
}

class FedSbRound implements RoundAggregation {
  /** The global adapter, or the first update's A and B (copied) when there is no state. */
  private reference: Adapter | null = null;
  /** Per module: the output scaling and the running sum of n_k (s_k / s) R_k. */
  private readonly sums = new Map<string, { scale: number; R: StagedSum }>();
  private totalExamples = 0;
  count = 0;
  private finished = false;

  constructor(private readonly state: GlobalState | null) {
    if (state !== null) {
      if (state.adapter === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb: the global state has no adapter (frozen A and B)');
      this.start(state.adapter, 'global state', false);
    }
  }

  /** @param copy copy A and B (they come from an update, which the output must not alias) */
  private start(adapter: Adapter, source: string, copy: boolean): void {
    const factors = new Map<string, ModuleFactors>();
    for (const m of adapter.layout.modules) {
      const f = adapter.factors.get(m.path);
      for (const factor of ['A', 'B'] as const) {
        if (f?.[factor] === undefined) {
          throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: ${tensorName(m.path, factor)} is missing; fedsb needs the frozen A and B from the global state or the first update`, { source, tensor: tensorName(m.path, factor) });
        }
      }
      factors.set(m.path, { A: copy ? f!.A!.slice() : f!.A!, B: copy ? f!.B!.slice() : f!.B! });
      this.sums.set(m.path, { scale: scaling(m), R: stagedZeros(m.rank * m.rank) });
    }
    this.reference = { layout: adapter.layout, factors };
  }

  add(update: ClientUpdate): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb: add() after finish()');
    if (this.reference === null) {
      checkUpdate(update, update.adapter.layout, { ...FEDSB_RULES, required: ['A', 'B', 'R'] });
      this.start(update.adapter, update.source, true);
    } else {
      checkUpdate(update, this.reference.layout, { ...FEDSB_RULES, finiteCheckedByCaller: ['R'] }); // R is checked while staged
      checkFrozenFactors(update, this.reference, ['A', 'B'], FEDSB_HINT);
    }
    const w = update.numExamples;
    const staged: StagedSum[] = [];
    for (const m of update.adapter.layout.modules) {
      const sum = this.sums.get(m.path)!;
      if (!sum.R.stage(update.adapter.factors.get(m.path)!.R!, (w * scaling(m)) / sum.scale)) refuseNonFinite(update.source, m.path, 'R');
      staged.push(sum.R);
    }
    for (const s of staged) s.commit();
    this.totalExamples += w;
    this.count++;
  }

  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedsb: finish() called twice');
    if (this.count === 0 || this.reference === null) throw new FedloraError('FL_ERR_NO_UPDATES', 'fedsb: the round has no updates to aggregate');
    this.finished = true;
    const factors = new Map<string, ModuleFactors>();
    for (const m of this.reference.layout.modules) {
      const frozen = this.reference.factors.get(m.path)!;
      factors.set(m.path, { A: frozen.A, B: frozen.B, R: toFloat32(this.sums.get(m.path)!.R.current, 1 / this.totalExamples) });
    }
    const aggregate: Adapter = { layout: { ...this.reference.layout, variant: 'fedsb' }, factors };
    const state: GlobalState = this.state
      ? { ...this.state, round: this.state.round + 1, adapter: aggregate, lastRoundUpdate: null }
      : { strategy: 'fedsb', round: 1, seed: '', spec: { modules: this.reference.layout.modules }, adapter: aggregate, lastRoundUpdate: null };
    return { state, aggregate, report: { strategy: 'fedsb', clients: this.count, totalExamples: this.totalExamples } };
  }
}
