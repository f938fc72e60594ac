/**
 * FLoRA: stacking (Wang et al., NeurIPS 2024; PAPERS.md "FLoRA"). For the round's clients,
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
 * State: `lastRoundUpdate` = the round's stack (what clients merge next); `adapter` = the sum of all
 * stacks so far (null before round 1).
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { truncateLowRank } from './low-rank.js';
import type { ClientInfo, ClientPlan, ClientUpdate, GlobalState, JobSpec, RoundAggregation, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';
import { trainableVectorsOf } from './trainable-vectors.js';
import { checkJobSpec, checkUpdate } from './validate-update.js';

/** One low-rank term coef * B @ A to stack; A [rank, n], B [m, rank]. */
interface StackPart {
  readonly A: Float32Array;
  readonly B: Float32Array;
  readonly rank: number;
  /** The term's full factor: the stacked adapter's s times its A rows' multiplier. */
  readonly coef: number;
}

/**
 * Concatenates terms into one adapter module: A rows fround((coef_k / s) A_k), B columns B_k, so
 * s B_stack A_stack = sum_k coef_k B_k A_k.
 */
export function stackParts(parts: readonly StackPart[], m: number, n: number, s: number): { A: Float32Array; B: Float32Array; rank: number } {
  const rank = parts.reduce((t, p) => t + p.rank, 0);
  const A = new Float32Array(rank * n);
  const B = new Float32Array(m * rank);
  let offset = 0;
  for (const p of parts) {
    const c = p.coef / s;
    const base = offset * n;
    for (let i = 0; i < p.rank * n; i++) A[base + i] = c * p.A[i]!;
    for (let row = 0; row < m; row++) B.set(p.B.subarray(row * p.rank, (row + 1) * p.rank), row * rank + offset);
    offset += p.rank;
  }
  return { A, B, rank };
}

/** The common scaling of terms, or 1 when they differ. */
function commonScale(scales: readonly number[]): number {
  return scales.every((v) => v === scales[0]) ? scales[0]! : 1;
}

/** The sum of two adapters with the same modules as one adapter: the concatenation of their factors. */
export function concatenateAdapters(first: Adapter, second: Adapter): Adapter {
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  for (const m2 of second.layout.modules) {
    const m1 = first.layout.modules.find((x) => x.path === m2.path);
    const f1 = first.factors.get(m2.path);
    const f2 = second.factors.get(m2.path)!;
    if (m1 === undefined || f1?.A === undefined || f1.B === undefined || m1.outFeatures !== m2.outFeatures || m1.inFeatures !== m2.inFeatures) {
      throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `flora: module '${m2.path}' of the round does not match the accumulated adapter`);
    }
    const s = commonScale([scaling(m1), scaling(m2)]);
    const stacked = stackParts(
      [
        { A: f1.A, B: f1.B, rank: m1.rank, coef: scaling(m1) },
        { A: f2.A!, B: f2.B!, rank: m2.rank, coef: scaling(m2) },
      ],
      m2.outFeatures,
      m2.inFeatures,
      s,
    );
    modules.push({ ...m2, rank: stacked.rank, alpha: s * stacked.rank });
    factors.set(m2.path, { A: stacked.A, B: stacked.B });
  }
  return { layout: { ...second.layout, modules }, factors };
}

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
      modules: state.spec.modules.map((m) => (c.rank === undefined ? m : { ...m, rank: c.rank, alpha: scaling(m) * c.rank })),
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
    const state: GlobalState = this.state
      ? { ...this.state, round: this.state.round + 1, adapter: accumulated, lastRoundUpdate: stack }
      : { strategy: 'flora', round: 1, seed: '', spec: { modules: this.order }, adapter: accumulated, lastRoundUpdate: stack };
    return { state, aggregate: stack, report: { strategy: 'flora', clients: this.count, totalExamples: this.totalExamples } };
  }
}
