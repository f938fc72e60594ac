/**
 * FFA-LoRA: freeze A (Sun et al., ICLR 2024; docs/strategies.md, "ffa"). A is Kaiming-uniform, derived
 * from the job seed and the module path by the specified generator (seeded-random.ts, kaiming.ts),
 * identical on every machine; B starts at zero and is the only trained and transmitted factor.
 * B <- sum_k p_k (s_k / s) B_k is exact: every client shares A, so s B_avg A = sum_k p_k s_k B_k A.
 *
 * An update that carries A must carry exactly the global A (compared by SHA-256 of its float32
 * bytes), else it is refused with FL_ERR_FROZEN_MISMATCH; ranks must equal the global ones.
 *
 * State: `adapter` = the frozen A and the averaged B (variant `ffa`).
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { checkFrozenFactors } from './frozen-check.js';
import { kaimingUniformA } from './kaiming.js';
import { releaseStagedSums, stagedSums, toFloat32, type StagedSum } from './running-sum.js';
import type { ClientInfo, ClientPlan, ClientUpdate, GlobalState, JobSpec, RoundAggregation, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';
import { applySummedDeltas, trainableVectorsOf } from './trainable-vectors.js';
import { checkJobSpec, checkUpdate, refuseNonFinite, tensorName } from './validate-update.js';

const FFA_RULES = { required: ['B'], optional: ['A'], sameRank: true } as const;
const FFA_HINT = 'ffa clients must use the A derived from the job seed';

/** The seed domain of FFA's frozen A; bump the version if the derivation ever changes. */
export const FFA_A_DOMAIN = 'fedlora/ffa/lora_A/v1';

/** The frozen A [rank, n] of a module for a job seed: the same bytes on every machine. */
export function ffaFrozenA(seed: string, module: AdapterModule): Float32Array {
  return kaimingUniformA(FFA_A_DOMAIN, seed, module.path, module.rank, module.inFeatures);
}

export class FfaStrategy implements Strategy {
  readonly name = 'ffa' as const;
  readonly variant = 'ffa' as const;
  readonly trainable = ['B'] as const;
  readonly aggregateIsSum = true;

  /** A from the seed, B = 0. */
  init(spec: JobSpec, seed: string): GlobalState {
    checkJobSpec('ffa', spec.modules);
    const factors = new Map<string, ModuleFactors>();
    for (const m of spec.modules) factors.set(m.path, { A: ffaFrozenA(seed, m), B: new Float32Array(m.outFeatures * m.rank) });
    const adapter: Adapter = { layout: { variant: 'ffa', modules: spec.modules, baseModelName: spec.baseModelName, baseModelSha256: spec.baseModelSha256 }, factors };
    return { strategy: 'ffa', round: 0, seed, spec, adapter, lastRoundUpdate: null };
  }

  /** Every client trains B with the job's rank from the global adapter (A regenerated from the seed or sent once). */
  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[] {
    return clients.map((c) => ({ clientId: c.id, modules: state.spec.modules, variant: 'ffa', trainable: this.trainable, start: 'global', mergeFirst: null }));
  }

  begin(state: GlobalState | null): RoundAggregation {
    return new FfaRound(state);
  }

  checkUpdate(state: GlobalState, update: ClientUpdate, options: { readonly trainableFiniteChecked?: boolean } = {}): void {
    if (state.adapter === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'ffa: the global state has no adapter (frozen A)');
    checkUpdate(update, state.adapter.layout, options.trainableFiniteChecked === true ? { ...FFA_RULES, finiteCheckedByCaller: ['B'] } : FFA_RULES);
    checkFrozenFactors(update, state.adapter, ['A'], FFA_HINT);
  }

  trainableVectors(adapter: Adapter): TrainableVector[] {
    return trainableVectorsOf(adapter, this.trainable);
  }

  aggregateSummedDeltas(state: GlobalState, sums: readonly SummedDelta[], count: number): RoundResult {
    return applySummedDeltas('ffa', state, this.trainable, sums, count);
  }
}

class FfaRound implements RoundAggregation {
  /** The global adapter, or the first update's A (copied) when there is no state. */
  private reference: Adapter | null = null;
  /** Per module: the output scaling and the running sum of n_k (s_k / s) B_k. */
  private readonly sums = new Map<string, { scale: number; B: StagedSum }>();
  private totalExamples = 0;
  /** Every module's sum, as stagedSums made them (released together once copied out). */
  private allSums: StagedSum[] = [];
  count = 0;
  private finished = false;

  constructor(private readonly state: GlobalState | null) {
    if (state !== null) {
      if (state.adapter === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'ffa: the global state has no adapter (frozen A)');
      this.start(state.adapter, 'global state', false);
    }
  }

  /** @param copy copy A (it comes from an update, which the output must not alias) */
  private start(adapter: Adapter, source: string, copy: boolean): void {
    const factors = new Map<string, ModuleFactors>();
    const sums = stagedSums(adapter.layout.modules.map((m) => m.outFeatures * m.rank));
    this.allSums = sums;
    for (const [i, m] of adapter.layout.modules.entries()) {
      const A = adapter.factors.get(m.path)?.A;
      if (A === undefined) {
        throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: ${tensorName(m.path, 'A')} is missing; ffa needs the frozen A from the global state or the first update`, { source, tensor: tensorName(m.path, 'A') });
      }
      factors.set(m.path, { A: copy ? A.slice() : A });
      this.sums.set(m.path, { scale: scaling(m), B: sums[i]! });
    }
    this.reference = { layout: adapter.layout, factors };
  }

  add(update: ClientUpdate): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'ffa: add() after finish()');
    if (this.reference === null) {
      checkUpdate(update, update.adapter.layout, { ...FFA_RULES, required: ['A', 'B'] });
      this.start(update.adapter, update.source, true);
    } else {
      checkUpdate(update, this.reference.layout, { ...FFA_RULES, finiteCheckedByCaller: ['B'] }); // B is checked while staged
      checkFrozenFactors(update, this.reference, ['A'], FFA_HINT);
    }
    // One pass per tensor: stage sum + w B_k while checking B_k is finite; commit only if all are.
    const w = update.numExamples;
    const staged: StagedSum[] = [];
    for (const m of update.adapter.layout.modules) {
      const sum = this.sums.get(m.path)!;
      if (!sum.B.stage(update.adapter.factors.get(m.path)!.B!, (w * scaling(m)) / sum.scale)) refuseNonFinite(update.source, m.path, 'B');
      staged.push(sum.B);
    }
    for (const s of staged) s.commit();
    this.totalExamples += w;
    this.count++;
  }

  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'ffa: finish() called twice');
    if (this.count === 0 || this.reference === null) throw new FedloraError('FL_ERR_NO_UPDATES', 'ffa: the round has no updates to aggregate');
    this.finished = true;
    const factors = new Map<string, ModuleFactors>();
    for (const m of this.reference.layout.modules) {
      const sum = this.sums.get(m.path)!;
      factors.set(m.path, { A: this.reference.factors.get(m.path)!.A, B: toFloat32(sum.B.current, 1 / this.totalExamples) });
    }
    releaseStagedSums(this.allSums); // copied out above
    const aggregate: Adapter = { layout: { ...this.reference.layout, variant: 'ffa' }, factors };
    const state: GlobalState = this.state
      ? { ...this.state, round: this.state.round + 1, adapter: aggregate, lastRoundUpdate: null }
      : { strategy: 'ffa', round: 1, seed: '', spec: { modules: this.reference.layout.modules }, adapter: aggregate, lastRoundUpdate: null };
    return { state, aggregate, report: { strategy: 'ffa', clients: this.count, totalExamples: this.totalExamples } };
  }
}
