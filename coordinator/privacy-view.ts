/** The privacy spent by a job, as `GET /api/jobs/:id` reports it, read from its ledger. */
import { DEFAULT_DELTA, type JobSpec } from '../shared/protocol/job-spec.js';
import type { PrivacyView } from '../shared/protocol/http.js';
import { accountKey, parseLedger, spent } from '../privacy/ledger.js';

/**
 * User-level epsilon of the job's ledger account (null when the job has no coordinator-side DP or
 * nothing was spent yet), with the budget, the rounds accounted, the (q, noise multiplier) pairs
 * booked and why the last round's q is what it is.
 */
export function privacyView(spec: JobSpec, ledgerJson: string | null): PrivacyView {
  const budgetEpsilon = spec.privacy.budget?.epsilon ?? null;
  const delta = spec.privacy.budget?.delta ?? (spec.privacy.user === undefined ? null : DEFAULT_DELTA);
  const none = { epsilon: null, delta, budgetEpsilon, rounds: 0, booked: [], sampling: null };
  if (ledgerJson === null) return none;
  const ledger = parseLedger(ledgerJson);
  const account = Object.values(ledger.accounts).find((a) => a.kind === 'job');
  if (account === undefined || ledger.accounts[accountKey('job', account.id)] === undefined) return none;
  const { epsilon } = spent(ledger, 'job', account.id);
  const rounds = account.history.reduce((n, m) => n + m.steps, 0);
  const booked = account.history.map((m) => ({ q: m.q, noiseMultiplier: m.sigma, rounds: m.steps }));
  // the engine puts the draw's explanation in brackets at the end of each round's label
  const last = account.entries[account.entries.length - 1]?.label.match(/\[([^\]]*)\]$/)?.[1] ?? null;
  return { epsilon, delta: account.budget.delta, budgetEpsilon, rounds, booked, sampling: last };
}
