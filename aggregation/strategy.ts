/**
 * The Strategy interface: what a federated LoRA method decides, as Flower's `Strategy` and DISCO's
 * `Aggregator` do, on fedlora's typed-array adapters (shared/adapter.ts; never tfjs).
 *
 * A strategy
 * - creates the job's initial global state (`init`),
 * - plans a round for each client: its rank, which factors it trains, what it starts from (`plan`),
 * - aggregates the round's updates as a stream (`begin` -> `add` ... -> `finish`), weighted by
 *   example counts p_k = n_k / sum_j n_j, in memory O(one adapter) (FLoRA's stack excepted: it is
 *   the concatenation of the updates by definition), never mutating its inputs,
 * - says whether its aggregate is a sum (`aggregateIsSum`), and if so exposes the trainable tensors
 *   as flat vectors (`trainableVectors`) and the step from an already-summed delta to the next
 *   state (`aggregateSummedDeltas`), so DP-FedAvg and secure aggregation can wrap it.
 *
 * The state a coordinator persists between rounds is a `GlobalState`: plain fields plus Adapters
 * (write those as PEFT adapter directories or safetensors). See docs/strategies.md for each
 * strategy's state.
 */
import type { Adapter, AdapterModule, AdapterVariant } from '../shared/adapter.js';

export type StrategyName = 'fedavg' | 'flora' | 'ffa' | 'fedsb';
export type FactorName = 'A' | 'B' | 'R';

/** What a job fixes before round 1: the adapted modules with [m, n], default rank and alpha. */
export interface JobSpec {
  readonly modules: readonly AdapterModule[];
  readonly baseModelName?: string;
  readonly baseModelSha256?: string;
}

/** One client's reply in a round. */
export interface ClientUpdate {
  /** The client's adapter after local training (at least the trainable factors). */
  readonly adapter: Adapter;
  /** n_k, the number of training examples; the weight is n_k / sum of n_j. Finite and > 0. */
  readonly numExamples: number;
  /** Who or what sent it (client id, adapter directory): named in every error about it. */
  readonly source: string;
  /** Fed-SB's init phase only: per module path, the client's summed gradient G [m, n] w.r.t. W0. */
  readonly gradients?: ReadonlyMap<string, Float32Array>;
}

/**
 * The global state between rounds. Plain data: a coordinator persists `adapter` and
 * `lastRoundUpdate` as adapters and the rest as JSON.
 * - fedavg: `adapter` holds the averaged A and B clients start from.
 * - ffa: `adapter` holds the seeded frozen A and the averaged B.
 * - fedsb: `adapter` holds the frozen A and B and the averaged R.
 * - flora: clients start a fresh LoRA each round on base weights merged with every earlier round's
 *   stack; `lastRoundUpdate` is the stack of the last round (what clients merge next), `adapter`
 *   the exact sum of all rounds so far (the concatenation of the stacks; null before round 1).
 */
export interface GlobalState {
  readonly strategy: StrategyName;
  /** Rounds aggregated so far. */
  readonly round: number;
  /** The job seed the state was created from (frozen factors and client inits derive from it). */
  readonly seed: string;
  readonly spec: JobSpec;
  readonly adapter: Adapter | null;
  readonly lastRoundUpdate: Adapter | null;
  /** The clipping norm DP-FedAvg's adaptive clipping chose for the next round (dp-fedavg.ts), when used. */
  readonly dpClipNorm?: number;
  /** flora: per module path, the rank each round's stack added to `adapter` (flora.ts floraOffer). */
  readonly floraRanks?: Readonly<Record<string, readonly number[]>>;
}

/** A client as the planner sees it. */
export interface ClientInfo {
  readonly id: string;
  /** The rank the client can afford (FLoRA honours it; others need the job's rank). */
  readonly rank?: number;
}

/** What one client does in a round. */
export interface ClientPlan {
  readonly clientId: string;
  /** The modules the client trains, with its rank and alpha. */
  readonly modules: readonly AdapterModule[];
  readonly variant: AdapterVariant;
  /** The factors it trains and sends back. */
  readonly trainable: readonly FactorName[];
  /**
   * `global`: load `state.adapter` and train from it. `fresh`: start a fresh LoRA (A Kaiming-
   * uniform, B = 0) after merging `mergeFirst` into the base weights (FLoRA).
   */
  readonly start: 'global' | 'fresh';
  readonly mergeFirst: Adapter | null;
}

/** The figure FLoRA calls aggregation noise: ||s B_avg A_avg - sum p_k s_k B_k A_k||_F / ||sum p_k s_k B_k A_k||_F. */
export interface AggregationNoise {
  /** `exact` by Gram traces; `sketch` a seeded random-projection estimate (see fedavg.ts). */
  readonly method: 'exact' | 'sketch';
  readonly overall: number;
  readonly perModule: Readonly<Record<string, number>>;
}

export interface AggregationReport {
  readonly strategy: StrategyName;
  readonly clients: number;
  /** Sum of n_k; absent when the weights were not example counts (summed deltas under DP or secure aggregation). */
  readonly totalExamples?: number;
  /** fedavg only, when not switched off. */
  readonly noise?: AggregationNoise;
}

export interface RoundResult {
  /** The state for the next round. */
  readonly state: GlobalState;
  /** This round's aggregate: what `fedlora aggregate` writes (flora: the round's stack). */
  readonly aggregate: Adapter;
  readonly report: AggregationReport;
}

/** A running aggregation of one round. */
export interface RoundAggregation {
  /** Adds one update; refuses a malformed one with a FedloraError and leaves the sum unchanged. */
  add(update: ClientUpdate): void;
  /** Number of updates added. */
  readonly count: number;
  /** Ends the round; throws FL_ERR_NO_UPDATES with none. Call once. */
  finish(): RoundResult;
}

/** One trainable tensor of an adapter as a flat vector, in a fixed order (module order, then factor). */
export interface TrainableVector {
  readonly path: string;
  readonly factor: FactorName;
  /** The PEFT tensor name, for errors. */
  readonly tensorName: string;
  readonly data: Float32Array;
}

/** A sum over clients of trainable-tensor deltas (update minus global), in float64. */
export interface SummedDelta {
  readonly path: string;
  readonly factor: FactorName;
  readonly data: Float64Array;
}

export interface Strategy {
  readonly name: StrategyName;
  /** The adapter variant clients train. */
  readonly variant: AdapterVariant;
  /** The factors clients train and send. */
  readonly trainable: readonly FactorName[];
  /** True when the aggregate is a (weighted) sum of the updates, so DP and secure aggregation can wrap it. */
  readonly aggregateIsSum: boolean;
  /**
   * The initial global state.
   * @param seed the job seed; frozen factors derive from it deterministically
   */
  init(spec: JobSpec, seed: string): GlobalState;
  /** The round plan of each selected client. */
  plan(state: GlobalState, clients: readonly ClientInfo[]): ClientPlan[];
  /**
   * Starts aggregating a round.
   * @param state the global state the clients trained from; null when there is none (the
   *   `fedlora aggregate` command): the first update then fixes the modules and frozen factors.
   */
  begin(state: GlobalState | null): RoundAggregation;
  /**
   * Refuses an update exactly as `begin(state).add(update)` would (modules, shapes, ranks, finite
   * values, frozen factors) without adding it anywhere: for wrappers that sum updates themselves.
   * @param options.trainableFiniteChecked the caller refuses NaN and Infinity in the trainable
   *   factors itself (in the pass that adds them), so this need not read them for it; strategies
   *   may still check. @default false
   */
  checkUpdate(state: GlobalState, update: ClientUpdate, options?: { readonly trainableFiniteChecked?: boolean }): void;
  /** The trainable tensors of an adapter as flat vectors (views, not copies), in a fixed order. */
  trainableVectors(adapter: Adapter): TrainableVector[];
  /**
   * The next state from a sum of trainable deltas over `count` clients: trainable = global + sum / count.
   * For wrappers (DP-FedAvg, secure aggregation). Throws FL_ERR_NOT_A_SUM where aggregateIsSum is false.
   */
  aggregateSummedDeltas(state: GlobalState, sums: readonly SummedDelta[], count: number): RoundResult;
}
