/**
 * The privacy ledger: what each job (user-level DP-FedAvg) and each client (sample-level DP-SGD)
 * has spent, as RDP over a fixed list of orders, against an (epsilon, delta) budget; and the check
 * that refuses a round BEFORE it runs when it would take an account over its budget.
 *
 * Pure: every function takes a `LedgerState` (a plain, JSON-serialisable object) and returns a new
 * one; the input is never mutated. The coordinator persists the state (serializeLedger /
 * parseLedger) in the same transaction as the round it pays for.
 *
 * Accounting: an account's history is a list of (q, sigma, steps) runs, consecutive runs of the
 * same mechanism merged; its RDP is sum_k steps_k * rdp(q_k, sigma_k) per order (Mironov 2017,
 * Proposition 1), recomputed from that history, not accumulated round by round, so after R
 * identical rounds it is bit-identical to `epsilonOfSampledGaussian(q, sigma, R, ...)`, which is
 * what calibration targeted.
 *  - user-level (job): q = clients per round / clients, one step per round (McMahan et al. 2018);
 *  - sample-level (client): q = batch / examples, local steps x rounds steps (Abadi et al. 2016);
 *  - any other Gaussian release, e.g. Fed-SB's noisy initial gradient statistics: q = 1.
 */
import { z } from 'zod';
import { FedloraError } from '../shared/errors.js';
import { DEFAULT_ORDERS, rdpSampledGaussianOrders, type FractionalSeries } from './rdp.js';
import { epsilonFromRdp, type Conversion } from './conversion.js';
import { privacyArgumentError, requireOpenUnit, requirePositive, requireRate } from './argument-checks.js';

export type AccountKind = 'job' | 'client';

/** `steps` runs of the Poisson-subsampled Gaussian mechanism (q = 1: not subsampled). */
export interface Mechanism {
  q: number;
  sigma: number;
  steps: number;
}

export interface Budget {
  epsilon: number;
  delta: number;
}

/** One booked spend, for the audit trail. */
export interface LedgerEntry {
  label: string;
  mechanism: Mechanism;
  /** epsilon of the account after this spend, and its optimal order */
  epsilon: number;
  order: number;
}

export interface Account {
  kind: AccountKind;
  id: string;
  budget: Budget;
  /** merged history: consecutive spends of the same (q, sigma) add their steps */
  history: Mechanism[];
  /** composed RDP at each of the ledger's orders */
  rdp: number[];
  entries: LedgerEntry[];
}

export interface LedgerState {
  version: 1;
  orders: number[];
  conversion: Conversion;
  fractionalSeries: FractionalSeries;
  /** by accountKey(kind, id) */
  accounts: Record<string, Account>;
}

export interface LedgerOptions {
  /** @default DEFAULT_ORDERS */
  orders?: readonly number[];
  /** @default 'improved' */
  conversion?: Conversion;
  /** @default 'signed' */
  fractionalSeries?: FractionalSeries;
}

/** The key of an account in `LedgerState.accounts`. Use `${jobId}/${clientId}` as a client id. */
export function accountKey(kind: AccountKind, id: string): string {
  return `${kind}:${id}`;
}

/** An empty ledger over the given orders. */
export function createLedger(options: LedgerOptions = {}): LedgerState {
  const orders = [...(options.orders ?? DEFAULT_ORDERS)];
  if (orders.length === 0 || orders.some((a) => typeof a !== 'number' || !(a > 1) || !Number.isFinite(a))) {
    privacyArgumentError('orders', 'a non-empty list of finite Renyi orders > 1', JSON.stringify(orders));
  }
  return { version: 1, orders, conversion: options.conversion ?? 'improved', fractionalSeries: options.fractionalSeries ?? 'signed', accounts: {} };
}

function checkBudget(budget: Budget): void {
  requirePositive(budget?.epsilon, 'budget.epsilon');
  requireOpenUnit(budget?.delta, 'budget.delta');
}

function checkMechanism(m: Mechanism, where: string): void {
  if (m === null || typeof m !== 'object') privacyArgumentError(where, 'a mechanism {q, sigma, steps}', m);
  requireRate(m.q, `${where}.q`);
  requirePositive(m.sigma, `${where}.sigma`);
  if (!Number.isSafeInteger(m.steps) || m.steps < 1) privacyArgumentError(`${where}.steps`, 'an integer >= 1', m.steps);
}

/**
 * Opens an account with a budget. Opening an existing account with the same budget returns the
 * state unchanged (so a coordinator that restarts may open again); a different budget is refused.
 */
export function openAccount(state: LedgerState, kind: AccountKind, id: string, budget: Budget): LedgerState {
  if (typeof id !== 'string' || id.length === 0) privacyArgumentError('id', 'a non-empty string', id);
  checkBudget(budget);
  const key = accountKey(kind, id);
  const existing = state.accounts[key];
  if (existing !== undefined) {
    if (existing.budget.epsilon === budget.epsilon && existing.budget.delta === budget.delta) return state;
    throw new FedloraError(
      'FL_ERR_LEDGER_STATE',
      `account ${key} already has budget (epsilon ${existing.budget.epsilon}, delta ${existing.budget.delta}); refusing to change it to (epsilon ${budget.epsilon}, delta ${budget.delta})`,
      { account: key, budget: existing.budget, requested: budget },
    );
  }
  const account: Account = { kind, id, budget: { ...budget }, history: [], rdp: new Array<number>(state.orders.length).fill(0), entries: [] };
  return { ...state, accounts: { ...state.accounts, [key]: account } };
}

function getAccount(state: LedgerState, kind: AccountKind, id: string): Account {
  const account = state.accounts[accountKey(kind, id)];
  if (account === undefined) {
    throw new FedloraError('FL_ERR_LEDGER_STATE', `no privacy account ${accountKey(kind, id)}; open it with a budget first`, { account: accountKey(kind, id) });
  }
  return account;
}

/**
 * User-level rounds at the coordinator whose clients were drawn with sampling rate q (the booked
 * rate of privacy/client-sampling.ts: offered / connected for a secret Poisson draw, else 1).
 * @param rounds @default 1
 */
export function sampledUserRounds(p: { samplingRate: number; noiseMultiplier: number; rounds?: number }): Mechanism {
  const m = { q: p.samplingRate, sigma: p.noiseMultiplier, steps: p.rounds ?? 1 };
  checkMechanism(m, 'sampledUserRounds');
  return m;
}

/**
 * User-level DP-FedAvg rounds at the coordinator: q = clientsPerRound / totalClients, one step a
 * round. Only right when clientsPerRound clients are drawn secretly and independently of each
 * other from all totalClients; the coordinator books {@link sampledUserRounds} with the rate of
 * its actual draw.
 * @param rounds @default 1
 */
export function userLevelRounds(p: { clientsPerRound: number; totalClients: number; noiseMultiplier: number; rounds?: number }): Mechanism {
  if (!Number.isSafeInteger(p.totalClients) || p.totalClients < 1) privacyArgumentError('totalClients', 'an integer >= 1', p.totalClients);
  if (!Number.isSafeInteger(p.clientsPerRound) || p.clientsPerRound < 1 || p.clientsPerRound > p.totalClients) {
    privacyArgumentError('clientsPerRound', `an integer in [1, totalClients = ${p.totalClients}]`, p.clientsPerRound);
  }
  const m = { q: p.clientsPerRound / p.totalClients, sigma: p.noiseMultiplier, steps: p.rounds ?? 1 };
  checkMechanism(m, 'userLevelRounds');
  return m;
}

/**
 * Sample-level DP-SGD on a client: q = batchSize / datasetSize, localSteps x rounds steps.
 * @param rounds @default 1
 */
export function sampleLevelTraining(p: { batchSize: number; datasetSize: number; noiseMultiplier: number; localSteps: number; rounds?: number }): Mechanism {
  if (!Number.isSafeInteger(p.datasetSize) || p.datasetSize < 1) privacyArgumentError('datasetSize', 'an integer >= 1', p.datasetSize);
  if (!(p.batchSize > 0 && p.batchSize <= p.datasetSize)) privacyArgumentError('batchSize', `in (0, datasetSize = ${p.datasetSize}]`, p.batchSize);
  if (!Number.isSafeInteger(p.localSteps) || p.localSteps < 1) privacyArgumentError('localSteps', 'an integer >= 1', p.localSteps);
  const rounds = p.rounds ?? 1;
  if (!Number.isSafeInteger(rounds) || rounds < 1) privacyArgumentError('rounds', 'an integer >= 1', rounds);
  const m = { q: p.batchSize / p.datasetSize, sigma: p.noiseMultiplier, steps: p.localSteps * rounds };
  checkMechanism(m, 'sampleLevelTraining');
  return m;
}

/**
 * `count` releases of the plain Gaussian mechanism with noise multiplier sigma (q = 1), e.g. the
 * noisy sum of Fed-SB's initial gradient statistics, which spends budget like any round.
 * @param count @default 1
 */
export function gaussianReleases(p: { noiseMultiplier: number; count?: number }): Mechanism {
  const m = { q: 1, sigma: p.noiseMultiplier, steps: p.count ?? 1 };
  checkMechanism(m, 'gaussianReleases');
  return m;
}

// RDP of one step per (q, sigma, orders, series): a pure function, memoised because a ledger
// re-composes its history on every check. Bounded so a long-running coordinator does not grow it.
const perStepCache = new Map<string, Float64Array>();
const PER_STEP_CACHE_LIMIT = 256;

function rdpPerStep(state: LedgerState, q: number, sigma: number): Float64Array {
  const key = `${q}|${sigma}|${state.fractionalSeries}|${state.orders.join(',')}`;
  let v = perStepCache.get(key);
  if (v === undefined) {
    v = rdpSampledGaussianOrders(q, sigma, 1, state.orders, { fractionalSeries: state.fractionalSeries });
    if (perStepCache.size >= PER_STEP_CACHE_LIMIT) perStepCache.delete(perStepCache.keys().next().value!);
    perStepCache.set(key, v);
  }
  return v;
}

function composeHistory(state: LedgerState, history: readonly Mechanism[]): number[] {
  const total = new Array<number>(state.orders.length).fill(0);
  for (const m of history) {
    const perStep = rdpPerStep(state, m.q, m.sigma);
    for (let k = 0; k < total.length; k++) total[k]! += m.steps * perStep[k]!;
  }
  return total;
}

function mergeHistory(history: readonly Mechanism[], m: Mechanism): Mechanism[] {
  const last = history[history.length - 1];
  if (last !== undefined && last.q === m.q && last.sigma === m.sigma) {
    return [...history.slice(0, -1), { q: last.q, sigma: last.sigma, steps: last.steps + m.steps }];
  }
  return [...history, { ...m }];
}

/** What an account has spent so far. */
export function spent(state: LedgerState, kind: AccountKind, id: string): { epsilon: number; order: number; budget: Budget } {
  const account = getAccount(state, kind, id);
  const { epsilon, order } = epsilonFromRdp(state.orders, account.rdp, account.budget.delta, state.conversion);
  return { epsilon, order, budget: { ...account.budget } };
}

/** One line per account, for the dashboard and the job report. */
export interface AccountSummary {
  account: string;
  kind: AccountKind;
  id: string;
  budget: Budget;
  epsilon: number;
  order: number;
  /** budget.epsilon - epsilon (never negative: the ledger refuses to overspend) */
  remainingEpsilon: number;
}

/** What every account has spent, sorted by account key. */
export function summarize(state: LedgerState): AccountSummary[] {
  return Object.keys(state.accounts)
    .sort()
    .map((key) => {
      const a = state.accounts[key]!;
      const { epsilon, order } = epsilonFromRdp(state.orders, a.rdp, a.budget.delta, state.conversion);
      return { account: key, kind: a.kind, id: a.id, budget: { ...a.budget }, epsilon, order, remainingEpsilon: Math.max(0, a.budget.epsilon - epsilon) };
    });
}

/**
 * How many more steps of one mechanism (q, sigma) an account can afford: the largest n such that
 * booking n steps keeps it within budget (0 if not even one fits). Epsilon grows with n, so an
 * exponential search then bisection find it with O(log n) evaluations.
 * @param limit stop counting here @default 1e9
 */
export function remainingSteps(state: LedgerState, kind: AccountKind, id: string, mechanism: { q: number; sigma: number }, limit = 1e9): number {
  checkMechanism({ ...mechanism, steps: 1 }, 'mechanism');
  const account = getAccount(state, kind, id);
  // Compose exactly as spend() would, so the answer agrees with it to the last bit.
  const fits = (n: number) => {
    const rdp = composeHistory(state, mergeHistory(account.history, { q: mechanism.q, sigma: mechanism.sigma, steps: n }));
    return epsilonFromRdp(state.orders, rdp, account.budget.delta, state.conversion).epsilon <= account.budget.epsilon;
  };
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = 2;
  while (hi <= limit && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > limit) return fits(limit) ? limit : bisect(lo, limit);
  return bisect(lo, hi);

  // invariant: fits(a) and not fits(b)
  function bisect(a: number, b: number): number {
    while (b - a > 1) {
      const mid = Math.floor((a + b) / 2);
      if (fits(mid)) a = mid;
      else b = mid;
    }
    return a;
  }
}

/** One account's part of a round: the account and the mechanism it would run. */
export interface SpendRequest {
  kind: AccountKind;
  id: string;
  mechanism: Mechanism;
}

export interface SpendCheck {
  account: string;
  budget: Budget;
  /** epsilon spent before, and what it would be after the spend (with its optimal order) */
  epsilonBefore: number;
  epsilonAfter: number;
  order: number;
  allowed: boolean;
}

function check(state: LedgerState, r: SpendRequest, index: number): { check: SpendCheck; history: Mechanism[]; rdp: number[] } {
  checkMechanism(r.mechanism, `requests[${index}].mechanism`);
  const account = getAccount(state, r.kind, r.id);
  const history = mergeHistory(account.history, r.mechanism);
  const rdp = composeHistory(state, history);
  const before = epsilonFromRdp(state.orders, account.rdp, account.budget.delta, state.conversion);
  const after = epsilonFromRdp(state.orders, rdp, account.budget.delta, state.conversion);
  return {
    check: {
      account: accountKey(r.kind, r.id),
      budget: { ...account.budget },
      epsilonBefore: before.epsilon,
      epsilonAfter: after.epsilon,
      order: after.order,
      allowed: after.epsilon <= account.budget.epsilon,
    },
    history,
    rdp,
  };
}

/**
 * Would these spends (one round: the job's and its clients') all stay within budget? Nothing is
 * booked. An account named twice is checked with both spends together.
 */
export function canSpend(state: LedgerState, requests: readonly SpendRequest[]): { allowed: boolean; checks: SpendCheck[] } {
  const checks: SpendCheck[] = [];
  let s = state;
  requests.forEach((r, i) => {
    const c = check(s, r, i);
    checks.push(c.check);
    s = book(s, r, c.history, c.rdp, '', c.check);
  });
  return { allowed: checks.every((c) => c.allowed), checks };
}

function book(state: LedgerState, r: SpendRequest, history: Mechanism[], rdp: number[], label: string, c: SpendCheck): LedgerState {
  const key = accountKey(r.kind, r.id);
  const account = state.accounts[key]!;
  const entry: LedgerEntry = { label, mechanism: { ...r.mechanism }, epsilon: c.epsilonAfter, order: c.order };
  return { ...state, accounts: { ...state.accounts, [key]: { ...account, history, rdp, entries: [...account.entries, entry] } } };
}

/**
 * Books a round's spends, all or none: if any account would exceed its budget, nothing is booked
 * and FL_ERR_BUDGET_EXCEEDED names the account, its budget and the would-be epsilon. Call it
 * BEFORE the round runs.
 * @param label what the spend pays for, e.g. "job 7 round 12" or "fedsb init statistics"
 * @returns the new state (the input state is not modified)
 */
export function spend(state: LedgerState, requests: readonly SpendRequest[], label: string): LedgerState {
  let s = state;
  requests.forEach((r, i) => {
    const c = check(s, r, i);
    if (!c.check.allowed) {
      const x = c.check;
      throw new FedloraError(
        'FL_ERR_BUDGET_EXCEEDED',
        `${label}: account ${x.account} would reach epsilon ${x.epsilonAfter} (order ${x.order}) > budget ${x.budget.epsilon} at delta ${x.budget.delta}; spent so far ${x.epsilonBefore}. The round was not run`,
        { ...x, label, mechanism: { ...r.mechanism } },
      );
    }
    s = book(s, r, c.history, c.rdp, label, c.check);
  });
  return s;
}

// --- persistence ---------------------------------------------------------------------------

const finite = z.number().refine(Number.isFinite, 'must be finite');
const mechanismSchema = z.object({ q: finite.pipe(z.number().gt(0).lte(1)), sigma: finite.pipe(z.number().gt(0)), steps: z.number().int().min(1) });
const accountSchema = z.object({
  kind: z.enum(['job', 'client']),
  id: z.string().min(1),
  budget: z.object({ epsilon: finite.pipe(z.number().gt(0)), delta: z.number().gt(0).lt(1) }),
  history: z.array(mechanismSchema),
  rdp: z.array(finite.pipe(z.number().min(0))),
  entries: z.array(z.object({ label: z.string(), mechanism: mechanismSchema, epsilon: z.number().min(0), order: z.number() })),
});
const ledgerSchema = z.object({
  version: z.literal(1),
  orders: z.array(finite.pipe(z.number().gt(1))).min(1),
  conversion: z.enum(['improved', 'classic']),
  fractionalSeries: z.enum(['signed', 'absolute']),
  accounts: z.record(z.string(), accountSchema),
});

/** The state as JSON text (every number in it is finite, so JSON keeps it exactly). */
export function serializeLedger(state: LedgerState): string {
  return JSON.stringify(state);
}

/**
 * Reads a persisted state back, validating it: a malformed one is FL_ERR_LEDGER_STATE naming the
 * field. Also checks each account's key and RDP length, and recomputes each RDP from its history.
 */
export function parseLedger(text: string): LedgerState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FedloraError('FL_ERR_LEDGER_STATE', `privacy ledger is not JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  const parsed = ledgerSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FedloraError('FL_ERR_LEDGER_STATE', `privacy ledger field ${issue.path.join('.') || '(root)'}: ${issue.message}`, { path: issue.path });
  }
  const state = parsed.data as LedgerState;
  for (const [key, account] of Object.entries(state.accounts)) {
    if (key !== accountKey(account.kind, account.id)) {
      throw new FedloraError('FL_ERR_LEDGER_STATE', `privacy ledger account ${key} holds ${accountKey(account.kind, account.id)}`, { account: key });
    }
    if (account.rdp.length !== state.orders.length) {
      throw new FedloraError('FL_ERR_LEDGER_STATE', `privacy ledger account ${key}: rdp has ${account.rdp.length} values for ${state.orders.length} orders`, { account: key });
    }
    // The history is the record; the RDP is derived from it, so recompute rather than trust it.
    account.rdp = composeHistory(state, account.history);
  }
  return state;
}
