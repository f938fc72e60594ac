/**
 * The privacy budget of one job (docs/privacy-accounting.md): the checks made before an attempt
 * is offered and the spends booked with the round's commit, on the job's ledger in the store.
 *  - user-level DP-FedAvg at the coordinator: one sampled-Gaussian step per round on the job's
 *    account, q of the round's actual draw (privacy/client-sampling.ts);
 *  - distributed DP under secure aggregation: the same, at the effective multiplier of the noise
 *    the surviving honest clients added;
 *  - Fed-SB's init phase: one Gaussian release (q = 1) on each participant's client account.
 * Pure bookkeeping over privacy/ledger.ts: nothing here writes the store; the runner commits the
 * returned ledger in the round's transaction.
 */
import { FedloraError } from '../../shared/errors.js';
import { DEFAULT_DELTA, type JobSpec } from '../../shared/protocol/job-spec.js';
import { accountKey, canSpend, createLedger, gaussianReleases, openAccount, parseLedger, sampledUserRounds, spend, spent, type Budget, type LedgerState, type Mechanism } from '../../privacy/ledger.js';
import type { ClientSampling } from '../../privacy/client-sampling.js';
import { effectiveNoiseMultiplier } from '../../privacy/secagg/index.js';
import type { Store } from '../store/store.js';

/** User-level DP-FedAvg's job account has no budget unless the spec sets one: track epsilon anyway. */
const UNBOUNDED_EPSILON = 1e300;

/** h, the clients assumed honest out of n offered: ceil(fraction n), at least 1. */
export function honestClients(fraction: number, n: number): number {
  return Math.max(1, Math.ceil(fraction * n - 1e-9));
}

export class JobPrivacy {
  constructor(
    private readonly jobId: string,
    private readonly spec: JobSpec,
    private readonly store: Pick<Store, 'ledger'>,
  ) {}

  /** delta of the job's (epsilon, delta) budget, also the one clients report DP-SGD's epsilon at. */
  get delta(): number {
    return this.spec.privacy.budget?.delta ?? DEFAULT_DELTA;
  }

  /** Whether the ledger books user-level rounds: DP-FedAvg at the coordinator, or distributed DP under secure aggregation. */
  get userLevel(): boolean {
    return this.spec.privacy.user !== undefined || (this.spec.secureAggregation.enabled && this.spec.secureAggregation.dp !== undefined);
  }

  private get budget(): Budget {
    return this.spec.privacy.budget ?? { epsilon: UNBOUNDED_EPSILON, delta: DEFAULT_DELTA };
  }

  private ledgerState(): LedgerState {
    const text = this.store.ledger(this.jobId);
    return text === null ? createLedger() : parseLedger(text);
  }

  /**
   * Checks that round `round` fits the budget before it is offered: the user-level step at the
   * draw's q, and distributed DP at its best case (every expected client in the sum; dropouts
   * only lower the booked multiplier).
   * @param expected clients expected in the sum: min(offered per round, connected)
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not fit
   */
  checkRound(round: number, sampling: ClientSampling, expected: number): void {
    this.bookUserRound(round, sampling, false);
    const dp = this.spec.secureAggregation.enabled ? this.spec.secureAggregation.dp : undefined;
    if (dp === undefined) return;
    const best = effectiveNoiseMultiplier(dp.noiseMultiplier, expected, honestClients(dp.honestFraction, expected), expected);
    if (best > 0) this.jobSpend(`job ${this.jobId} round ${round}`, false, this.secureMechanism(best, sampling));
  }

  /**
   * The ledger after this round's user-level spend, or null without coordinator-side DP. q is the
   * rate of the round's actual draw: offered / connected for the secret Poisson draw, 1 when it was
   * no subsample; any offered client can end in the aggregate.
   * @param commit false: only check that it fits
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not
   */
  bookUserRound(round: number, sampling: ClientSampling, commit = true): LedgerState | null {
    const dp = this.spec.privacy.user;
    if (dp === undefined) return null;
    return this.jobSpend(`job ${this.jobId} round ${round} [${sampling.note}]`, commit, sampledUserRounds({ samplingRate: sampling.q, noiseMultiplier: dp.noiseMultiplier }));
  }

  /**
   * The effective noise multiplier of a secure round's distributed DP: the noise of the honest
   * clients among `survivors` of the `offered`, relative to the clipping norm.
   */
  secureMultiplier(offered: number, survivors: number): number {
    const dp = this.spec.secureAggregation.dp!;
    return effectiveNoiseMultiplier(dp.noiseMultiplier, offered, honestClients(dp.honestFraction, offered), survivors);
  }

  /** The ledger after a secure round's distributed DP at `effectiveMultiplier` (secureMultiplier). */
  bookSecureRound(round: number, sampling: ClientSampling, effectiveMultiplier: number): LedgerState {
    return this.jobSpend(`job ${this.jobId} round ${round} (secure, distributed DP) [${sampling.note}]`, true, this.secureMechanism(effectiveMultiplier, sampling));
  }

  /**
   * Checks that Fed-SB's init gradient release alone fits the budget (on a fresh client account).
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not
   */
  checkInitRelease(): void {
    const mechanism = this.initRelease();
    if (mechanism === null) return;
    const probe = openAccount(createLedger(), 'client', `${this.jobId}/probe`, this.budget);
    if (!canSpend(probe, [{ kind: 'client', id: `${this.jobId}/probe`, mechanism }]).allowed) {
      throw new FedloraError('FL_ERR_BUDGET_EXCEEDED', `the fedsb init gradient release (sigma ${mechanism.sigma}) alone would exceed the privacy budget (epsilon ${this.budget.epsilon}, delta ${this.budget.delta})`);
    }
  }

  /**
   * The ledger with the init phase's gradient release booked on each participant's client account
   * (`client:<jobId>/<clientId>`; one Gaussian mechanism, q = 1), or null without client-side DP.
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not fit
   */
  bookInitRelease(participants: readonly string[]): LedgerState | null {
    const mechanism = this.initRelease();
    if (mechanism === null) return null;
    let ledger = this.ledgerState();
    for (const id of participants) ledger = openAccount(ledger, 'client', `${this.jobId}/${id}`, this.budget);
    return spend(ledger, participants.map((id) => ({ kind: 'client' as const, id: `${this.jobId}/${id}`, mechanism })), `job ${this.jobId} fedsb init gradient`);
  }

  /** Epsilon the job's account has spent in `ledger` (0 without one). */
  epsilonSpent(ledger: LedgerState): number {
    return ledger.accounts[accountKey('job', this.jobId)] === undefined ? 0 : spent(ledger, 'job', this.jobId).epsilon;
  }

  /** The init phase's release, when the clients noise their gradients under client-side DP. */
  private initRelease(): Mechanism | null {
    const sigma = this.spec.fedsb?.noiseMultiplier;
    if (this.spec.privacy.client === undefined || sigma === undefined) return null;
    return gaussianReleases({ noiseMultiplier: sigma });
  }

  /** Distributed DP's mechanism: q of the round's draw, sigma = the effective multiplier. */
  private secureMechanism(effectiveMultiplier: number, sampling: ClientSampling): Mechanism {
    return sampledUserRounds({ samplingRate: sampling.q, noiseMultiplier: effectiveMultiplier });
  }

  /**
   * The ledger after one user-level release `mechanism` on the job's account; with commit false,
   * only checks that it fits.
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not
   */
  private jobSpend(label: string, commit: boolean, mechanism: Mechanism): LedgerState {
    const budget = this.budget;
    const ledger = openAccount(this.ledgerState(), 'job', this.jobId, budget);
    const request = [{ kind: 'job' as const, id: this.jobId, mechanism }];
    if (!commit) {
      if (!canSpend(ledger, request).allowed) {
        throw new FedloraError('FL_ERR_BUDGET_EXCEEDED', `${label} would exceed the privacy budget (epsilon ${budget.epsilon}, delta ${budget.delta})`);
      }
      return ledger;
    }
    return spend(ledger, request, label);
  }
}
