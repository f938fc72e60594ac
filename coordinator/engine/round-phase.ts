/** A round of the job's strategy over its global state: the attempt phase of every round after Fed-SB's init. */
import type { Plan } from '../../shared/protocol/events.js';
import type { ClientInfo, ClientPlan, GlobalState, RoundAggregation, RoundResult, Strategy } from '../../aggregation/strategy.js';
import type { ClientSampling } from '../../privacy/client-sampling.js';
import { summedDeltasFromTensors } from '../../aggregation/secure-sum.js';
import type { Attempt, AttemptPhase, Collected, Committer } from './attempt.js';
import type { JobPrivacy } from './job-privacy.js';

export class RoundPhase implements AttemptPhase {
  readonly kind = 'round';
  readonly label: string;
  readonly recordsUpdates = true;
  readonly failure: string;

  constructor(
    private readonly strategy: Strategy,
    private readonly state: GlobalState,
    private readonly round: number,
    private readonly privacy: JobPrivacy,
  ) {
    this.label = `round-${round}`;
    this.failure = `round ${round} could not be aggregated or committed`;
  }

  checkBudget(sampling: ClientSampling, expected: number): void {
    this.privacy.checkRound(this.round, sampling, expected);
  }

  plans(clients: readonly ClientInfo[]): ClientPlan[] {
    return this.strategy.plan(this.state, clients);
  }

  offerPlan(wired: Plan): Plan {
    return wired;
  }

  begin(): RoundAggregation {
    return this.strategy.begin(this.state);
  }

  fromSecureSum(sum: Float64Array, tensors: Plan['updateTensors'], _survivors: number, divisor: number): RoundResult {
    return this.strategy.aggregateSummedDeltas(this.state, summedDeltasFromTensors(sum, tensors), divisor);
  }

  commit(runner: Committer, a: Attempt, reason: 'quorum' | 'deadline', collected: Collected): void {
    runner.commitRound(a, reason, collected);
  }
}
