/**
 * FedAvg of LoRA factors (FedIT; docs/strategies.md, "fedavg"), the naive baseline:
 * A <- sum_k p_k A_k, B <- sum_k p_k (s_k / s) B_k, p_k = n_k / sum_j n_j. Unequal ranks are
 * zero-padded (HetLoRA-style): A_k gets zero rows, B_k zero columns up to r_max, which in a running
 * sum means adding A_k into the first r_k rows and B_k into the first r_k columns.
 *
 * Inexact: s B_avg A_avg != sum_k p_k s_k B_k A_k. The gap, relative to ||sum_k p_k s_k B_k A_k||_F,
 * is reported per module and overall ("aggregation noise"). Computing it exactly needs every pair of
 * clients (||sum_k c_k B_k A_k||^2 = sum_kl c_k c_l tr((B_k^T B_l)(A_l A_k^T))), i.e. keeping every
 * update until the end, or the dense m x n sum. So there are three modes:
 * - `off` (default): no figure; a job asks for the sketch with `aggregationNoise: 'sketch'`.
 * - `sketch` (streaming): a seeded two-sided CountSketch (count-sketch.ts) keeps
 *   Y = sum_k n_k s_k T^T B_k A_k S [q, q] per module; at the end ||T^T (s B_avg A_avg) S - Y / N||_F
 *   estimates the gap and ||Y / N||_F the reference. Each update costs two scattered passes over its
 *   elements plus q^2 r per module (4 to 5 times the average itself, measured in
 *   bench/aggregation.bench.ts); memory is O(q^2 + m + n) per module.
 *   An estimate: the squared norms have relative variance about 4 / q (q = 128: sd ~ 18% of the
 *   squared norm, ~9% of the norm).
 * - `exact`: keeps references to every update's factors (memory O(K x adapter); the caller must not
 *   reuse an update's buffers before finish()) and computes the
 *   norms from r x r Gram traces, never forming an m x n product: cost O((sum_k r_k)^2 (m + n)) per
 *   module. For the CLI and small jobs.
 *
 * State: `adapter` = the averaged A and B (variant `lora`, rank r_max, alpha = s * r_max).
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { kaimingUniformA } from './kaiming.js';
import { productGram, quadraticForm, type LowRankTerm } from './low-rank.js';
import { BilateralCountSketch } from './count-sketch.js';
import { addScaled, addScaledColumns, growRows, releaseStagedSums, stagedSum, stagedSums, toFloat32, widenColumns, type StagedSum } from './running-sum.js';
import { SeededRandom } from './seeded-random.js';
import type { AggregationNoise, ClientInfo, ClientPlan, ClientUpdate, GlobalState, JobSpec, RoundAggregation, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';
import { applySummedDeltas, trainableVectorsOf } from './trainable-vectors.js';
import { checkJobSpec, checkUpdate, refuseNonFinite } from './validate-update.js';

export interface FedAvgOptions {
  /** How the aggregation-noise figure is computed: it costs several times the aggregation, so it is opt-in. @default 'off' */
  readonly noise?: 'exact' | 'sketch' | 'off';
  /** Buckets q per side of the sketch (the sketch is q x q per module). @default 128 */
  readonly sketchColumns?: number;
}

interface ModuleSum {
  readonly module: AdapterModule; // reference m, n
  /** s of the output: the global module's, else the first update's. */
  readonly scale: number;
  rank: number;
  A: StagedSum; // [rank, n] sum of n_k A_k
  B: StagedSum; // [m, rank] sum of n_k (s_k / s) B_k
  readonly sketcher?: BilateralCountSketch;
  readonly sketch?: Float64Array; // [q, q] sum of n_k s_k T^T B_k A_k S
  readonly terms: LowRankTerm[]; // exact mode: (B_k, A_k, r_k, n_k s_k)
}

export class FedAvgStrategy implements Strategy {
  readonly name = 'fedavg' as const;
  readonly variant = 'lora' as const;
  readonly trainable = ['A', 'B'] as const;
  readonly aggregateIsSum = true;
  private readonly noise: 'exact' | 'sketch' | 'off';
  private readonly sketchColumns: number;

  constructor(options: FedAvgOptions = {}) {
    this.noise = options.noise ?? 'off';
    this.sketchColumns = options.sketchColumns ?? 128;
    if (!Number.isInteger(this.sketchColumns) || this.sketchColumns < 1) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `fedavg: sketchColumns must be an integer >= 1, got ${options.sketchColumns}`);
    }
  }

  /** A Kaiming-uniform (PEFT's init, seeded per module), B = 0: dW starts at zero. */
  init(spec: JobSpec, seed: string): GlobalState {
    checkJobSpec('fedavg', spec.modules);
    const factors = new Map<string, ModuleFactors>();
    for (const m of spec.modules) {
      factors.set(m.path, { A: kaimingUniformA('fedlora/fedavg/lora_A/v1', seed, m.path, m.rank, m.inFeatures), B: new Float32Array(m.outFeatures * m.rank) });
    }
    const adapter: Adapter = { layout: { variant: 'lora', modules: spec.modules, baseModelName: spec.baseModelName, baseModelSha256: spec.baseModelSha256 }, factors };
    return { strategy: 'fedavg', round: 0, seed, spec, adapter, lastRoundUpdate: null };
  }

  /**
   * Every client trains A and B from the global adapter. A client that asks for a smaller rank
   * trains the first r rows of A and columns of B (its zero-padded contribution is what HetLoRA sums).
   * A client asking for MORE than the global rank is refused, never trained silently at the
   * global rank: give the job the largest rank (HetLoRA pads the others).
   * @throws FL_ERR_AGGREGATION_INPUT naming the client and both ranks
   */
  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[] {
    const top = Math.max(...state.spec.modules.map((m) => m.rank));
    const over = clients.find((c) => c.rank !== undefined && c.rank > top);
    if (over !== undefined) {
      throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `fedavg: client '${over.id}' asks for rank ${over.rank}, above the job's rank ${top}; fedavg cannot train it at that rank: set the job's rank to the largest of its ranks (smaller ones are zero-padded) or use flora`, { client: over.id, rank: over.rank, jobRank: top });
    }
    return clients.map((c) => ({
      clientId: c.id,
      modules: state.spec.modules.map((m) => (c.rank !== undefined && c.rank < m.rank ? { ...m, rank: c.rank, alpha: scaling(m) * c.rank } : m)),
      variant: 'lora',
      trainable: this.trainable,
      start: 'global',
      mergeFirst: null,
    }));
  }

  begin(state: GlobalState | null): RoundAggregation {
    return new FedAvgRound(state, this.noise, this.sketchColumns);
  }

  checkUpdate(state: GlobalState, update: ClientUpdate): void {
    checkUpdate(update, state.adapter?.layout ?? { variant: 'lora', modules: state.spec.modules }, { required: ['A', 'B'], sameRank: false });
  }

  trainableVectors(adapter: Adapter): TrainableVector[] {
    return trainableVectorsOf(adapter, this.trainable);
  }

  aggregateSummedDeltas(state: GlobalState, sums: readonly SummedDelta[], count: number): RoundResult {
    return applySummedDeltas('fedavg', state, this.trainable, sums, count);
  }
}

class FedAvgRound implements RoundAggregation {
  private readonly sums = new Map<string, ModuleSum>();
  private order: AdapterModule[] | null = null;
  /** The sums stagedSums made (one wasm memory), released once finish copied them out. */
  private arenaSums: StagedSum[] = [];
  private totalExamples = 0;
  count = 0;
  private finished = false;

  constructor(
    private readonly state: GlobalState | null,
    private readonly noise: 'exact' | 'sketch' | 'off',
    private readonly q: number,
  ) {}

  add(update: ClientUpdate): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedavg: add() after finish()');
    const reference = this.state?.adapter?.layout ?? (this.order === null ? update.adapter.layout : { variant: 'lora' as const, modules: this.order });
    // Fast path when every module has the running sum's rank (all but HetLoRA padding): each tensor
    // is read once, its finiteness checked while it is staged (running-sum.ts StagedSum).
    if (this.order === null && this.state?.adapter) this.start(reference.modules); // sums at the global ranks
    const sameRanks = update.adapter.layout.modules.every((m) => this.sums.get(m.path)?.rank === m.rank);
    checkUpdate(update, reference, { required: ['A', 'B'], sameRank: false, finiteCheckedByCaller: sameRanks ? ['A', 'B'] : [] });
    if (this.order === null) this.start(reference.modules);
    const w = update.numExamples;
    if (sameRanks) {
      const staged: StagedSum[] = [];
      for (const m of update.adapter.layout.modules) {
        const sum = this.sums.get(m.path)!;
        const f = update.adapter.factors.get(m.path)!;
        if (!sum.A.stage(f.A!, w)) refuseNonFinite(update.source, m.path, 'A');
        if (!sum.B.stage(f.B!, (w * scaling(m)) / sum.scale)) refuseNonFinite(update.source, m.path, 'B');
        staged.push(sum.A, sum.B);
      }
      for (const s of staged) s.commit();
    } else {
      // Padding: finiteness was checked above; grow the sums to r_max and add in place.
      for (const m of update.adapter.layout.modules) {
        const sum = this.sums.get(m.path)!;
        const f = update.adapter.factors.get(m.path)!;
        const { outFeatures: rows, inFeatures: n, rank } = m;
        if (rank > sum.rank) {
          sum.A = stagedSum(growRows(sum.A.current, rank, n));
          sum.B = stagedSum(widenColumns(sum.B.current, rows, sum.rank, rank));
          sum.rank = rank;
        }
        addScaled(sum.A.current.subarray(0, rank * n), f.A!, w);
        if (rank === sum.rank) addScaled(sum.B.current, f.B!, (w * scaling(m)) / sum.scale);
        else addScaledColumns(sum.B.current, sum.rank, f.B!, rows, rank, (w * scaling(m)) / sum.scale);
      }
    }
    for (const m of update.adapter.layout.modules) {
      const sum = this.sums.get(m.path)!;
      const { A, B } = update.adapter.factors.get(m.path)!;
      const c = w * scaling(m);
      if (sum.sketcher !== undefined && sum.sketch !== undefined) sum.sketcher.addProduct(sum.sketch, B!, A!, m.rank, c);
      if (this.noise === 'exact') sum.terms.push({ B: B!, A: A!, rank: m.rank, coef: c });
    }
    this.totalExamples += w;
    this.count++;
  }

  private start(modules: readonly AdapterModule[]): void {
    this.order = [...modules];
    const globals = modules.map((m) => this.state?.adapter?.layout.modules.find((g) => g.path === m.path));
    // The global ranks (0 without a state: the sums grow to r_max as updates arrive), all in one
    // wasm memory where SIMD pays off (running-sum.ts stagedSums).
    const ranks = globals.map((g) => g?.rank ?? 0);
    const sums = stagedSums(modules.flatMap((m, i) => [ranks[i]! * m.inFeatures, m.outFeatures * ranks[i]!]));
    this.arenaSums = sums;
    for (const [i, m] of modules.entries()) {
      const globalModule = globals[i];
      const scale = scaling(globalModule ?? m);
      const rank = ranks[i]!;
      const sketcher = this.noise === 'sketch' ? new BilateralCountSketch(SeededRandom.fromSeed('fedlora/fedavg/noise-sketch/v2', this.state?.seed ?? '', m.path), m.outFeatures, m.inFeatures, this.q) : undefined;
      this.sums.set(m.path, {
        module: m,
        scale,
        rank,
        A: sums[2 * i]!,
        B: sums[2 * i + 1]!,
        sketcher,
        sketch: sketcher?.empty(),
        terms: [],
      });
    }
  }

  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'fedavg: finish() called twice');
    if (this.count === 0 || this.order === null) throw new FedloraError('FL_ERR_NO_UPDATES', 'fedavg: the round has no updates to aggregate');
    this.finished = true;
    const inv = 1 / this.totalExamples;
    const modules: AdapterModule[] = [];
    const factors = new Map<string, ModuleFactors>();
    const perModule: Record<string, number> = {};
    let gapSq = 0;
    let refSq = 0;
    for (const m of this.order) {
      const sum = this.sums.get(m.path)!;
      const A = toFloat32(sum.A.current, inv);
      const B = toFloat32(sum.B.current, inv);
      modules.push({ ...m, rank: sum.rank, alpha: sum.scale * sum.rank });
      factors.set(m.path, { A, B });
      const figure = this.noiseOf(sum, A, B, inv);
      if (figure !== null) {
        perModule[m.path] = figure.ref === 0 ? (figure.gap === 0 ? 0 : Infinity) : Math.sqrt(figure.gap / figure.ref);
        gapSq += figure.gap;
        refSq += figure.ref;
      }
    }
    releaseStagedSums(this.arenaSums); // copied out above: the next round reuses the memory
    const base = this.state?.adapter?.layout;
    const aggregate: Adapter = { layout: { variant: 'lora', modules, baseModelName: base?.baseModelName, baseModelSha256: base?.baseModelSha256 }, factors };
    const noise: AggregationNoise | undefined =
      this.noise === 'off' ? undefined : { method: this.noise, overall: refSq === 0 ? (gapSq === 0 ? 0 : Infinity) : Math.sqrt(gapSq / refSq), perModule };
    const state: GlobalState = this.state
      ? { ...this.state, round: this.state.round + 1, adapter: aggregate, lastRoundUpdate: null }
      : { strategy: 'fedavg', round: 1, seed: '', spec: { modules }, adapter: aggregate, lastRoundUpdate: null };
    return { state, aggregate, report: { strategy: 'fedavg', clients: this.count, totalExamples: this.totalExamples, noise } };
  }

  /** Squared norms of the gap s B A - M and of M = sum p_k s_k B_k A_k, or null when switched off. */
  private noiseOf(sum: ModuleSum, A: Float32Array, B: Float32Array, inv: number): { gap: number; ref: number } | null {
    const { outFeatures: rows, inFeatures: n } = sum.module;
    if (this.noise === 'exact') {
      const terms: LowRankTerm[] = [{ B, A, rank: sum.rank, coef: sum.scale }, ...sum.terms.map((t) => ({ ...t, coef: -t.coef * inv }))];
      const G = productGram(terms, rows, n);
      const coefs = terms.map((t) => t.coef);
      return { gap: quadraticForm(G, coefs), ref: quadraticForm(G, coefs, (i) => i > 0) };
    }
    if (this.noise === 'sketch' && sum.sketcher !== undefined && sum.sketch !== undefined) {
      const avg = sum.sketcher.empty();
      sum.sketcher.addProduct(avg, B, A, sum.rank, sum.scale);
      let gap = 0;
      let ref = 0;
      for (let i = 0; i < avg.length; i++) {
        const y = sum.sketch[i]! * inv;
        gap += (avg[i]! - y) ** 2;
        ref += y * y;
      }
      return { gap, ref };
    }
    return null;
  }
}
