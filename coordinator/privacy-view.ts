/** The privacy spent by a job, as `GET /api/jobs/:id` reports it, read from its ledger. */
import type { JobSpec } from '../shared/protocol/job-spec.js';
import type { PrivacyView } from '../shared/protocol/http.js';
import { accountKey, parseLedger, spent } from '../privacy/ledger.js';

/**
 * User-level epsilon of the job's ledger account (null when the job has no coordinator-side DP or
 * nothing was spent yet), with the budget and the rounds accounted.
 */
export function privacyView(spec: JobSpec, ledgerJson: string | null): PrivacyView {
  const budgetEpsilon = spec.privacy.budget?.epsilon ?? null;
  const delta = spec.privacy.budget?.delta ?? (spec.privacy.user === undefined ? null : 1e-5);
  if (ledgerJson === null) return { epsilon: null, delta, budgetEpsilon, rounds: 0 };
  const ledger = parseLedger(ledgerJson);
  const account = Object.values(ledger.accounts).find((a) => a.kind === 'job');
  if (account === undefined || ledger.accounts[accountKey('job', account.id)] === undefined) return { epsilon: null, delta, budgetEpsilon, rounds: 0 };
  const { epsilon } = spent(ledger, 'job', account.id);
  const rounds = account.history.reduce((n, m) => n + m.steps, 0);
  return { epsilon, delta: account.budget.delta, budgetEpsilon, rounds };
}
