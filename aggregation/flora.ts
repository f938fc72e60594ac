/**
 * FLoRA: stacking (Wang et al., NeurIPS 2024; docs/strategies.md, "flora"). For the round's clients,
 *   A_stack = concat_rows[c_1 A_1; c_2 A_2; ...]  [sum_k r_k, n],  c_k = p_k s_k / s,
 *   B_stack = concat_cols[B_1, B_2, ...]          [m, sum_k r_k],
 * so s B_stack A_stack = sum_k p_k s_k B_k A_k exactly (to the one float32 rounding of c_k A_k), for
 * any mix of ranks. The weights go on A only; s is the clients' common scaling, or 1 when they
 * differ (the ratio is folded into A).
 *
 * Over rounds: each round's stack is merged into the base weights by the clients, who then start a
 * fresh LoRA; the coordinator keeps the exact sum of all rounds as one low-rank adapter, the
 * concatenation of the stacks (rank sum_t sum_k r_k), which `compressFloraAdapter` can truncate to
 * a chosen rank with a reported error.
 *
 * Not a sum in the sense wrappers need: the aggregate keeps each client's factors apart, so
 * user-level DP noise and secure aggregation cannot apply (aggregateIsSum = false); use client-side
 * DP-SGD. Memory is O(sum of the round's updates) by definition of the stack.
 *
 * State: `lastRoundUpdate` = the round's stack; `adapter` = the sum of all stacks so far (null
 * before round 1), their concatenation in round order; `floraRanks` = the rank each round added
 * to each module, so that the rounds a client lacks are a range of the accumulated factors.
 *
 * Downlink (issue 12): a client is offered only what it lacks ({@link floraOffer}): the stacks of
 * the rounds after those it has merged (the round's stack for an up-to-date client), as a range of
 * the accumulated adapter's rows and columns. Per module that costs c (m + n) r per missed round;
 * the client keeps what it merged (client/agent/flora-merged.ts).
 */
export { concatenateAdapters, stackParts };
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { commonScale, concatenateAdapters, sliceStack, stackParts } from '../shared/lora-stack.js';
import { truncateLowRank } from './low-rank.js';
import type { ClientInfo, ClientPlan, ClientUpdate, GlobalState, JobSpec, RoundAggregation, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';
import { trainableVectorsOf } from './trainable-vectors.js';
import { checkJobSpec, checkUpdate } from './validate-update.js';

export interface CompressedAdapter {
  /** Rank-k factors with alpha = k (s = 1). */
  readonly adapter: Adapter;
  /** ||dW - dW_k||_F / ||dW||_F over all modules together. */
  readonly relativeError: number;
  readonly perModule: Readonly<Record<string, number>>;
}

/**
 * Truncated SVD of each module's s B A to `rank` (Eckart-Young: the best rank-k approximation in
 * Frobenius norm), without forming m x n products (low-rank.ts), reporting the relative error.
 * @param rank target rank, an integer >= 1; modules of lower rank are kept as they are (error 0)
 */
export function compressFloraAdapter(adapter: Adapter, rank: number): CompressedAdapter {
  if (!Number.isInteger(rank) || rank < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `flora: compression rank must be an integer >= 1, got ${rank}`);
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  const perModule: Record<string, number> = {};
  let dropped = 0;
  let total = 0;
  for (const m of adapter.layout.modules) {
    const f = adapter.factors.get(m.path);
    if (f?.A === undefined || f.B === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `flora: module '${m.path}' lacks A or B`);
    const t = truncateLowRank(f.B, f.A, m.outFeatures, m.inFeatures, m.rank, scaling(m), rank);
    modules.push({ ...m, rank: t.rank, alpha: t.rank });
    factors.set(m.path, { A: t.A, B: t.B });
    perModule[m.path] = t.relativeError;
    t.singularValues.forEach((v, i) => {
      total += v * v;
      if (i >= t.rank) dropped += v * v;
    });
  }
  return { adapter: { layout: { ...adapter.layout, modules }, factors }, relativeError: total === 0 ? 0 : Math.sqrt(dropped / total), perModule };
}

export class FloraStrategy implements Strategy {
  readonly name = 'flora' as const;
  readonly variant = 'lora' as const;
  readonly trainable = ['A', 'B'] as const;
  readonly aggregateIsSum = false;

  /** Nothing global yet: every round starts fresh LoRAs. */
  init(spec: JobSpec, seed: string): GlobalState {
    checkJobSpec('flora', spec.modules);
    return { strategy: 'flora', round: 0, seed, spec, adapter: null, lastRoundUpdate: null };
  }

  /** Each client merges the last stack, then trains a fresh LoRA of its own rank with the job's scaling. */
  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[] {
    return clients.map((c) => ({
      clientId: c.id,
      // a client's own rank, capped at min(m, n) like the job's (coordinator/jobs.ts strategySpecOf)
      modules: state.spec.modules.map((m) => {
        if (c.rank === undefined) return m;
        const rank = Math.min(c.rank, m.outFeatures, m.inFeatures);
        return { ...m, rank, alpha: scaling(m) * rank };
      }),
      variant: 'lora',
      trainable: this.trainable,
      start: 'fresh',
      mergeFirst: state.lastRoundUpdate,
    }));
  }

  begin(state: GlobalState | null): RoundAggregation {
    return new FloraRound(state);
  }

  checkUpdate(state: GlobalState, update: ClientUpdate): void {
    checkUpdate(update, { variant: 'lora', modules: state.spec.modules }, { required: ['A', 'B'], sameRank: false });
  }

  trainableVectors(adapter: Adapter): TrainableVector[] {
    return trainableVectorsOf(adapter, this.trainable);
  }

  aggregateSummedDeltas(_state: GlobalState, _sums: readonly SummedDelta[], _count: number): RoundResult {
    throw new FedloraError(
      'FL_ERR_NOT_A_SUM',
      "flora's aggregate is a stack that keeps each client's factors apart, not a sum, so summed deltas (DP-FedAvg, secure aggregation) cannot produce it; use client-side DP-SGD with flora",
    );
  }
}

interface Received {
  readonly A: Float32Array;
  readonly B: Float32Array;
  readonly rank: number;
  readonly weight: number;
  readonly scale: number;
}

class FloraRound implements RoundAggregation {
  private readonly received = new Map<string, Received[]>();
  private order: readonly AdapterModule[] | null = null;
  private totalExamples = 0;
  count = 0;
  private finished = false;

  constructor(private readonly state: GlobalState | null) {}

  add(update: ClientUpdate): void {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'flora: add() after finish()');
    const reference = this.order === null ? (this.state === null ? update.adapter.layout : { variant: 'lora' as const, modules: this.state.spec.modules }) : { variant: 'lora' as const, modules: this.order };
    checkUpdate(update, reference, { required: ['A', 'B'], sameRank: false });
    if (this.order === null) {
      this.order = reference.modules;
      for (const m of this.order) this.received.set(m.path, []);
    }
    for (const m of update.adapter.layout.modules) {
      const f = update.adapter.factors.get(m.path)!;
      // Copies: the stack is built at finish, and the caller may reuse its buffers meanwhile.
      this.received.get(m.path)!.push({ A: f.A!.slice(), B: f.B!.slice(), rank: m.rank, weight: update.numExamples, scale: scaling(m) });
    }
    this.totalExamples += update.numExamples;
    this.count++;
  }

  finish(): RoundResult {
    if (this.finished) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', 'flora: finish() called twice');
    if (this.count === 0 || this.order === null) throw new FedloraError('FL_ERR_NO_UPDATES', 'flora: the round has no updates to aggregate');
    this.finished = true;
    const modules: AdapterModule[] = [];
    const factors = new Map<string, ModuleFactors>();
    for (const m of this.order) {
      const parts = this.received.get(m.path)!;
      const s = commonScale(parts.map((p) => p.scale));
      const stacked = stackParts(
        parts.map((p) => ({ A: p.A, B: p.B, rank: p.rank, coef: (p.weight / this.totalExamples) * p.scale })),
        m.outFeatures,
        m.inFeatures,
        s,
      );
      this.received.set(m.path, []); // let the copies go
      modules.push({ ...m, rank: stacked.rank, alpha: s * stacked.rank });
      factors.set(m.path, { A: stacked.A, B: stacked.B });
    }
    const spec = this.state?.spec;
    const stack: Adapter = { layout: { variant: 'lora', modules, baseModelName: spec?.baseModelName, baseModelSha256: spec?.baseModelSha256 }, factors };
    const accumulated = this.state?.adapter ? concatenateAdapters(this.state.adapter, stack) : stack;
    const floraRanks: Record<string, number[]> = {};
    for (const m of modules) floraRanks[m.path] = [...(this.state?.floraRanks?.[m.path] ?? []), m.rank];
    const state: GlobalState = this.state
      ? { ...this.state, round: this.state.round + 1, adapter: accumulated, lastRoundUpdate: stack, floraRanks }
      : { strategy: 'flora', round: 1, seed: '', spec: { modules: this.order }, adapter: accumulated, lastRoundUpdate: stack, floraRanks };
    return { state, aggregate: stack, report: { strategy: 'flora', clients: this.count, totalExamples: this.totalExamples } };
  }
}

/** What a FLoRA offer carries: the stacks of rounds [from, through) of the accumulated adapter. */
export interface FloraOffer {
  /** The stacks to merge (their sum, stacked), or null when there is nothing to merge. */
  readonly adapter: Adapter | null;
  /** The first round (0-based count of stacks the client already has) the adapter holds. */
  readonly from: number;
  /** Rounds aggregated so far: the client has merged every stack once it merged these. */
  readonly through: number;
  /** Per module, the rank each round in [from, through) added (how to split the adapter). */
  readonly ranks: Readonly<Record<string, readonly number[]>>;
}

/**
 * The part of FLoRA's accumulated adapter a client that has merged the first `merged` rounds
 * lacks: rounds [merged, state.round) (the round's stack for an up-to-date client, everything for a
 * new one). A state without per-round ranks (written before they were kept) offers everything.
 * @param merged rounds the client has merged, 0 <= merged; above state.round counts as 0 (a
 *   client ahead of the coordinator's state cannot be right)
 */
export function floraOffer(state: GlobalState, merged: number): FloraOffer {
  const through = state.round;
  const accumulated = state.adapter;
  const ranks = state.floraRanks;
  const from = ranks !== undefined && Number.isInteger(merged) && merged >= 0 && merged <= through ? merged : 0;
  if (accumulated === null || from === through) return { adapter: null, from: through, through, ranks: {} };
  if (ranks === undefined) {
    const all = Object.fromEntries(accumulated.layout.modules.map((m) => [m.path, [m.rank]]));
    return { adapter: accumulated, from: 0, through, ranks: all };
  }
  const ranges = new Map<string, readonly [number, number]>();
  const offered: Record<string, number[]> = {};
  for (const m of accumulated.layout.modules) {
    const r = ranks[m.path];
    if (r === undefined || r.length !== through) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `flora: the state records ${r?.length ?? 0} rounds of ranks for module '${m.path}', expected ${through}`);
    const start = r.slice(0, from).reduce((t, v) => t + v, 0);
    ranges.set(m.path, [start, m.rank]);
    offered[m.path] = r.slice(from);
  }
  return { adapter: sliceStack(accumulated, ranges), from, through, ranks: offered };
}
