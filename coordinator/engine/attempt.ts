/**
 * One round attempt as the runner keeps it (coordinator/engine/job-runner.ts), and what it is an
 * attempt at: a round of the strategy over the global state (round-phase.ts), or Fed-SB's init
 * phase, which makes the initial state before round 0 (fedsb-init-phase.ts).
 */
import type { Plan } from '../../shared/protocol/events.js';
import type { ClientInfo, ClientPlan, RoundAggregation, RoundResult } from '../../aggregation/strategy.js';
import type { ClientSampling } from '../../privacy/client-sampling.js';
import type { LedgerState } from '../../privacy/ledger.js';
import type { UpdateRecord } from '../store/store.js';
import type { UpdateCollector } from './update-collector.js';

export interface Offered {
  readonly plan: Plan;
  /** The strategy's plan, kept for nothing but logs today. */
  readonly strategyPlan: ClientPlan;
  /** The client's deterministic key (clientKey), the order updates are aggregated in. */
  readonly key: string;
  /** FLoRA: this client's own offered state (only the rounds it lacks) and the rounds it then has merged. */
  readonly flora?: { readonly stateBytes: Uint8Array; readonly through: number };
  status: 'offered' | 'accepted';
}

/** What a collector hands over when its attempt closes with enough updates. */
export interface Collected {
  readonly participants: readonly string[];
  readonly result: RoundResult;
  /** The round record's metrics (means of the clients' metrics, DP and secure aggregation figures). */
  readonly metrics: Record<string, number>;
  /**
   * Books the round's DP spend on the job's ledger: null when there is none. Called only when a
   * strategy round commits (the init phase books its own release instead).
   * @throws FL_ERR_BUDGET_EXCEEDED
   */
  readonly bookPrivacy: () => LedgerState | null;
}

/** The commits an attempt can end in; the runner (job-runner.ts) implements them. */
export interface Committer {
  /** Commits a strategy round: state, records, ledger and nonces in one transaction; then the next round. */
  commitRound(a: Attempt, reason: 'quorum' | 'deadline', collected: Collected): void;
  /** Commits the job's initial global state (round 0) with its ledger; then round 0. */
  commitInitialState(a: Attempt, collected: Collected, ledger: LedgerState | null): void;
}

/** What an attempt aggregates into. */
export interface AttemptPhase {
  readonly kind: 'round' | 'fedsb-init';
  /** Names the attempt in secure aggregation's context and graph seed: `round-<r>` or `fedsb-init`. */
  readonly label: string;
  /** Whether an attempt that ends below the minimum leaves its update records on its round (the init phase has no round yet). */
  readonly recordsUpdates: boolean;
  /**
   * Checks that the attempt's DP release fits the job's budget before anything is offered.
   * @param expected clients expected in the aggregate: min(offered per round, connected)
   * @throws FL_ERR_BUDGET_EXCEEDED
   */
  checkBudget(sampling: ClientSampling, expected: number): void;
  /** The strategy's plans for the selected clients. */
  plans(clients: readonly ClientInfo[]): ClientPlan[];
  /** The plan offered, from the plan wired for the client (plan-wiring.ts). */
  offerPlan(wired: Plan): Plan;
  /** A fresh running aggregation, updates added one by one. */
  begin(): RoundAggregation;
  /**
   * The aggregate of a secure sum over `survivors` clients of the flat vector `tensors` lays out.
   * @param divisor what the strategy divides the sum by (the survivors, or a fixed count under distributed DP)
   */
  fromSecureSum(sum: Float64Array, tensors: Plan['updateTensors'], survivors: number, divisor: number): RoundResult;
  /** Commits what the attempt collected, through the runner. @throws on a failed aggregate or commit */
  commit(runner: Committer, a: Attempt, reason: 'quorum' | 'deadline', collected: Collected): void;
  /** The failure's wording when aggregating or committing throws. */
  readonly failure: string;
}

export interface Attempt {
  readonly phase: AttemptPhase;
  readonly round: number;
  readonly attempt: number;
  readonly startedAt: number;
  readonly deadline: number;
  readonly offers: Map<string, Offered>;
  /** Collects the updates: plainly, or through secure aggregation (update-collector.ts). */
  collector: UpdateCollector;
  readonly records: UpdateRecord[];
  /** Bytes of the states offered in this attempt (the downlink), for the round record. */
  bytesDown: number;
  readonly nonces: Array<{ nonce: string; clientId: string }>;
  readonly maxUpdateBytes: number;
  /** Encoded once per attempt: every selected client gets the same global state bytes (FLoRA's own offers aside). */
  readonly stateBytes: Uint8Array;
  readonly refusalsByClient: Map<string, number>;
  /** How the offered clients were drawn, and the q user-level DP books for the round. */
  readonly sampling: ClientSampling;
  examples: number;
  lastAcceptedAt: number;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
}
