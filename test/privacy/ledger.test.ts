/**
 * The privacy ledger: booking, refusal before a round runs, all-or-nothing rounds, purity, and
 * persistence. Figures are checked against the accountant computed from scratch.
 */
import { describe, expect, it } from 'vitest';
import {
  accountKey,
  canSpend,
  createLedger,
  gaussianReleases,
  openAccount,
  parseLedger,
  remainingSteps,
  sampleLevelTraining,
  serializeLedger,
  spend,
  spent,
  summarize,
  userLevelRounds,
  type LedgerState,
} from '../../privacy/ledger.js';
import { epsilonOfEvents, epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { smallestSigma } from '../../privacy/calibration.js';
import { FedloraError, isFedloraError } from '../../shared/errors.js';

function caught(f: () => unknown): FedloraError {
  try {
    f();
  } catch (e) {
    if (e instanceof FedloraError) return e;
    throw e;
  }
  throw new Error('expected a FedloraError');
}

describe('mechanism builders', () => {
  it('user level: q = clients per round / clients, one step a round', () => {
    expect(userLevelRounds({ clientsPerRound: 10, totalClients: 100, noiseMultiplier: 1.2 })).toEqual({ q: 0.1, sigma: 1.2, steps: 1 });
    expect(userLevelRounds({ clientsPerRound: 5, totalClients: 20, noiseMultiplier: 1, rounds: 30 })).toEqual({ q: 0.25, sigma: 1, steps: 30 });
  });

  it('sample level: q = batch / examples, local steps x rounds', () => {
    expect(sampleLevelTraining({ batchSize: 32, datasetSize: 3200, noiseMultiplier: 1.1, localSteps: 50, rounds: 4 })).toEqual({ q: 0.01, sigma: 1.1, steps: 200 });
  });

  it('a plain Gaussian release (Fed-SB initial statistics) is q = 1', () => {
    expect(gaussianReleases({ noiseMultiplier: 3 })).toEqual({ q: 1, sigma: 3, steps: 1 });
  });

  it('refuses impossible parameters with the field named', () => {
    expect(caught(() => userLevelRounds({ clientsPerRound: 11, totalClients: 10, noiseMultiplier: 1 })).message).toContain('clientsPerRound must be');
    expect(caught(() => userLevelRounds({ clientsPerRound: 1, totalClients: 10, noiseMultiplier: 0 })).message).toContain('userLevelRounds.sigma must be');
    expect(caught(() => sampleLevelTraining({ batchSize: 64, datasetSize: 32, noiseMultiplier: 1, localSteps: 1 })).message).toContain('batchSize must be');
    expect(caught(() => sampleLevelTraining({ batchSize: 8, datasetSize: 32, noiseMultiplier: 1, localSteps: 0 })).message).toContain('localSteps must be');
    expect(caught(() => gaussianReleases({ noiseMultiplier: 1, count: 1.5 })).message).toContain('steps must be');
  });
});

describe('the ledger', () => {
  const budget = { epsilon: 2, delta: 1e-5 };
  const round = userLevelRounds({ clientsPerRound: 10, totalClients: 100, noiseMultiplier: 1.5 });

  it('books spends; after R identical rounds the figure is exactly the accountant over R steps', () => {
    const roomy = { epsilon: 5, delta: 1e-5 };
    let state = openAccount(createLedger(), 'job', 'j1', roomy);
    for (let r = 1; r <= 25; r++) state = spend(state, [{ kind: 'job', id: 'j1', mechanism: round }], `round ${r}`);
    expect(spent(state, 'job', 'j1')).toEqual({ ...epsilonOfSampledGaussian(0.1, 1.5, 25, 1e-5), budget: roomy });
    const account = state.accounts[accountKey('job', 'j1')]!;
    expect(account.history).toEqual([{ q: 0.1, sigma: 1.5, steps: 25 }]);
    expect(account.entries).toHaveLength(25);
    expect(account.entries[24]!.label).toBe('round 25');
    expect(account.entries[24]!.epsilon).toBe(spent(state, 'job', 'j1').epsilon);
  });

  it('refuses the round that would exceed the budget, before it is booked, with the numbers', () => {
    let state = openAccount(createLedger(), 'job', 'j1', { epsilon: 1, delta: 1e-5 });
    let rounds = 0;
    for (;;) {
      const check = canSpend(state, [{ kind: 'job', id: 'j1', mechanism: round }]);
      if (!check.allowed) break;
      state = spend(state, [{ kind: 'job', id: 'j1', mechanism: round }], `round ${++rounds}`);
    }
    // independently: rounds is the largest R whose epsilon fits
    expect(epsilonOfSampledGaussian(0.1, 1.5, rounds, 1e-5).epsilon).toBeLessThanOrEqual(1);
    expect(epsilonOfSampledGaussian(0.1, 1.5, rounds + 1, 1e-5).epsilon).toBeGreaterThan(1);
    const before = serializeLedger(state);
    const e = caught(() => spend(state, [{ kind: 'job', id: 'j1', mechanism: round }], `round ${rounds + 1}`));
    expect(e.code).toBe('FL_ERR_BUDGET_EXCEEDED');
    const wouldBe = epsilonOfSampledGaussian(0.1, 1.5, rounds + 1, 1e-5);
    expect(e.details).toMatchObject({ account: 'job:j1', epsilonAfter: wouldBe.epsilon, order: wouldBe.order, budget: { epsilon: 1, delta: 1e-5 } });
    expect(e.message).toContain(`round ${rounds + 1}: account job:j1 would reach epsilon ${wouldBe.epsilon}`);
    expect(e.message).toContain('> budget 1');
    expect(serializeLedger(state)).toBe(before); // nothing booked, input untouched
  });

  it('a round of several accounts is all or nothing', () => {
    let state = createLedger();
    state = openAccount(state, 'job', 'j', budget);
    state = openAccount(state, 'client', 'j/a', { epsilon: 8, delta: 1e-5 });
    state = openAccount(state, 'client', 'j/b', { epsilon: 0.5, delta: 1e-5 }); // a tight client budget
    const local = sampleLevelTraining({ batchSize: 16, datasetSize: 800, noiseMultiplier: 1.0, localSteps: 200 });
    const requests = [
      { kind: 'job' as const, id: 'j', mechanism: round },
      { kind: 'client' as const, id: 'j/a', mechanism: local },
      { kind: 'client' as const, id: 'j/b', mechanism: local },
    ];
    const check = canSpend(state, requests);
    expect(check.checks.map((c) => c.allowed)).toEqual([true, true, false]);
    expect(check.allowed).toBe(false);
    const e = caught(() => spend(state, requests, 'round 1'));
    expect(e.code).toBe('FL_ERR_BUDGET_EXCEEDED');
    expect(e.details.account).toBe('client:j/b');
    expect(spent(state, 'job', 'j').epsilon).toBe(0);
    expect(spent(state, 'client', 'j/a').epsilon).toBe(0);
    // without the tight client the round goes through for both
    const next = spend(state, requests.slice(0, 2), 'round 1');
    expect(spent(next, 'client', 'j/a').epsilon).toBe(epsilonOfSampledGaussian(0.02, 1.0, 200, 1e-5).epsilon);
  });

  it('an account named twice in one round is charged for both', () => {
    let state = openAccount(createLedger(), 'job', 'j', budget);
    state = spend(state, [{ kind: 'job', id: 'j', mechanism: round }, { kind: 'job', id: 'j', mechanism: round }], 'two at once');
    expect(spent(state, 'job', 'j').epsilon).toBe(epsilonOfSampledGaussian(0.1, 1.5, 2, 1e-5).epsilon);
  });

  it("Fed-SB's initial statistics and changing mechanisms compose like the accountant's events", () => {
    let state = openAccount(createLedger(), 'job', 'fedsb', { epsilon: 10, delta: 1e-5 });
    const init = gaussianReleases({ noiseMultiplier: 5 });
    const r1 = userLevelRounds({ clientsPerRound: 4, totalClients: 20, noiseMultiplier: 1.1 });
    const r2 = userLevelRounds({ clientsPerRound: 8, totalClients: 20, noiseMultiplier: 1.4 });
    state = spend(state, [{ kind: 'job', id: 'fedsb', mechanism: init }], 'fedsb init statistics');
    for (let r = 0; r < 3; r++) state = spend(state, [{ kind: 'job', id: 'fedsb', mechanism: r1 }], 'round');
    for (let r = 0; r < 2; r++) state = spend(state, [{ kind: 'job', id: 'fedsb', mechanism: r2 }], 'round');
    const want = epsilonOfEvents([{ q: 1, sigma: 5, steps: 1 }, { ...r1, steps: 3 }, { ...r2, steps: 2 }], 1e-5);
    expect(spent(state, 'job', 'fedsb').epsilon).toBeCloseTo(want.epsilon, 13);
    expect(spent(state, 'job', 'fedsb').order).toBe(want.order);
    expect(state.accounts['job:fedsb']!.history.map((m) => m.steps)).toEqual([1, 3, 2]);
  });

  it('a calibrated sigma lets exactly the planned number of rounds through', () => {
    const plan = smallestSigma({ q: 0.25, steps: 40, delta: 1e-5, epsilon: 4 });
    let state = openAccount(createLedger(), 'job', 'planned', { epsilon: 4, delta: 1e-5 });
    const m = { q: 0.25, sigma: plan.sigma, steps: 1 };
    for (let r = 0; r < 40; r++) state = spend(state, [{ kind: 'job', id: 'planned', mechanism: m }], `round ${r + 1}`);
    expect(caught(() => spend(state, [{ kind: 'job', id: 'planned', mechanism: m }], 'round 41')).code).toBe('FL_ERR_BUDGET_EXCEEDED');
  });

  it('is pure: spending returns a new state and leaves the old one as it was', () => {
    const s0 = openAccount(createLedger(), 'job', 'j', budget);
    const text = serializeLedger(s0);
    const s1 = spend(s0, [{ kind: 'job', id: 'j', mechanism: round }], 'r1');
    expect(serializeLedger(s0)).toBe(text);
    expect(s1).not.toBe(s0);
    expect(spent(s1, 'job', 'j').epsilon).toBeGreaterThan(0);
  });

  it('opening is idempotent with the same budget and refuses a changed one', () => {
    const s0 = openAccount(createLedger(), 'client', 'j/a', budget);
    expect(openAccount(s0, 'client', 'j/a', { ...budget })).toBe(s0);
    const e = caught(() => openAccount(s0, 'client', 'j/a', { epsilon: 3, delta: 1e-5 }));
    expect(e.code).toBe('FL_ERR_LEDGER_STATE');
    expect(e.message).toContain('refusing to change it');
  });

  it('refuses unknown accounts, bad budgets and bad mechanisms', () => {
    const s = createLedger();
    expect(caught(() => spend(s, [{ kind: 'job', id: 'nope', mechanism: round }], 'x')).code).toBe('FL_ERR_LEDGER_STATE');
    expect(caught(() => spent(s, 'client', 'nope')).message).toContain('no privacy account client:nope');
    expect(caught(() => openAccount(s, 'job', 'j', { epsilon: 0, delta: 1e-5 })).message).toContain('budget.epsilon must be');
    expect(caught(() => openAccount(s, 'job', 'j', { epsilon: 1, delta: 1 })).message).toContain('budget.delta must be');
    expect(caught(() => openAccount(s, 'job', '', budget)).message).toContain('id must be');
    const s1 = openAccount(s, 'job', 'j', budget);
    const e = caught(() => canSpend(s1, [{ kind: 'job', id: 'j', mechanism: { q: 0.1, sigma: -1, steps: 1 } }]));
    expect(isFedloraError(e, 'FL_ERR_PRIVACY_ARGUMENT')).toBe(true);
    expect(e.message).toContain('requests[0].mechanism.sigma');
    expect(caught(() => createLedger({ orders: [1, 2] })).message).toContain('orders must be');
  });
});

describe('persistence', () => {
  function sample(): LedgerState {
    let s = createLedger({ conversion: 'improved' });
    s = openAccount(s, 'job', 'j', { epsilon: 5, delta: 1e-6 });
    s = openAccount(s, 'client', 'j/c1', { epsilon: 8, delta: 1e-5 });
    s = spend(s, [{ kind: 'job', id: 'j', mechanism: gaussianReleases({ noiseMultiplier: 6 }) }], 'init');
    s = spend(s, [{ kind: 'job', id: 'j', mechanism: userLevelRounds({ clientsPerRound: 3, totalClients: 30, noiseMultiplier: 1 }) }, { kind: 'client', id: 'j/c1', mechanism: sampleLevelTraining({ batchSize: 10, datasetSize: 1000, noiseMultiplier: 1.1, localSteps: 20 }) }], 'round 1');
    return s;
  }

  it('reads back what it writes, and keeps spending the same way after a restart', () => {
    const s = sample();
    const text = serializeLedger(s);
    const back = parseLedger(text);
    expect(back).toEqual(s);
    const m = userLevelRounds({ clientsPerRound: 3, totalClients: 30, noiseMultiplier: 1 });
    const a = spend(s, [{ kind: 'job', id: 'j', mechanism: m }], 'round 2');
    const b = spend(back, [{ kind: 'job', id: 'j', mechanism: m }], 'round 2');
    expect(serializeLedger(b)).toBe(serializeLedger(a));
  });

  it('recomputes the RDP from the history, so an edited RDP cannot hide spending', () => {
    const s = sample();
    const raw = JSON.parse(serializeLedger(s));
    raw.accounts['job:j'].rdp = raw.accounts['job:j'].rdp.map(() => 0);
    expect(spent(parseLedger(JSON.stringify(raw)), 'job', 'j')).toEqual(spent(s, 'job', 'j'));
  });

  it.each([
    ['not json', 'not JSON'],
    [JSON.stringify({ version: 2 }), 'field version'],
    [JSON.stringify({ ...JSON.parse(serializeLedger(createLedger())), orders: [0.5] }), 'field orders.0'],
  ])('refuses a malformed state: %s', (text, message) => {
    const e = caught(() => parseLedger(text));
    expect(e.code).toBe('FL_ERR_LEDGER_STATE');
    expect(e.message).toContain(message);
  });

  it('keeps the JSON parser\'s error as the cause of a state that is not JSON', () => {
    const e = caught(() => parseLedger('not json'));
    expect(e.cause).toBeInstanceOf(SyntaxError);
    expect(e.reason).toBe(`privacy ledger is not JSON: ${(e.cause as Error).message}`);
  });

  it('refuses an account filed under the wrong key, or with an RDP of the wrong length', () => {
    const raw = JSON.parse(serializeLedger(sample()));
    raw.accounts['job:other'] = raw.accounts['job:j'];
    expect(caught(() => parseLedger(JSON.stringify(raw))).message).toContain('account job:other holds job:j');
    const raw2 = JSON.parse(serializeLedger(sample()));
    raw2.accounts['job:j'].rdp.pop();
    expect(caught(() => parseLedger(JSON.stringify(raw2))).message).toContain('rdp has');
    const raw3 = JSON.parse(serializeLedger(sample()));
    raw3.accounts['job:j'].history[0].sigma = -1;
    expect(caught(() => parseLedger(JSON.stringify(raw3))).message).toContain('accounts.job:j.history.0.sigma');
  });
});

describe('planning', () => {
  it('summarize lists every account with what it spent and what is left', () => {
    let s = createLedger();
    s = openAccount(s, 'job', 'j', { epsilon: 3, delta: 1e-5 });
    s = openAccount(s, 'client', 'j/a', { epsilon: 8, delta: 1e-5 });
    const m = userLevelRounds({ clientsPerRound: 5, totalClients: 50, noiseMultiplier: 1.2 });
    s = spend(s, [{ kind: 'job', id: 'j', mechanism: { ...m, steps: 10 } }], 'ten rounds');
    const rows = summarize(s);
    expect(rows.map((r) => r.account)).toEqual(['client:j/a', 'job:j']);
    const job = rows[1]!;
    const want = epsilonOfSampledGaussian(0.1, 1.2, 10, 1e-5);
    expect(job).toEqual({ account: 'job:j', kind: 'job', id: 'j', budget: { epsilon: 3, delta: 1e-5 }, epsilon: want.epsilon, order: want.order, remainingEpsilon: 3 - want.epsilon });
    expect(rows[0]!.epsilon).toBe(0);
    expect(rows[0]!.remainingEpsilon).toBe(8);
  });

  it('remainingSteps is exactly the number of rounds spend() will still accept', () => {
    let s = openAccount(createLedger(), 'job', 'j', { epsilon: 2, delta: 1e-5 });
    const m = userLevelRounds({ clientsPerRound: 10, totalClients: 40, noiseMultiplier: 2 });
    s = spend(s, [{ kind: 'job', id: 'j', mechanism: { ...m, steps: 3 } }], 'first three');
    const n = remainingSteps(s, 'job', 'j', m);
    expect(n).toBeGreaterThan(0);
    for (let r = 0; r < n; r++) s = spend(s, [{ kind: 'job', id: 'j', mechanism: m }], `round ${r + 4}`);
    expect(remainingSteps(s, 'job', 'j', m)).toBe(0);
    expect(caught(() => spend(s, [{ kind: 'job', id: 'j', mechanism: m }], 'one too many')).code).toBe('FL_ERR_BUDGET_EXCEEDED');
    // independently: the accountant over 3 + n rounds fits, over 3 + n + 1 it does not
    expect(epsilonOfSampledGaussian(0.25, 2, 3 + n, 1e-5).epsilon).toBeLessThanOrEqual(2);
    expect(epsilonOfSampledGaussian(0.25, 2, 4 + n, 1e-5).epsilon).toBeGreaterThan(2);
  });

  it('remainingSteps stops counting at the limit, and refuses a bad mechanism', () => {
    const s = openAccount(createLedger(), 'client', 'c', { epsilon: 50, delta: 1e-5 });
    expect(remainingSteps(s, 'client', 'c', { q: 1e-4, sigma: 20 }, 1000)).toBe(1000);
    expect(caught(() => remainingSteps(s, 'client', 'c', { q: 0, sigma: 1 })).message).toContain('mechanism.q must be');
  });
});
