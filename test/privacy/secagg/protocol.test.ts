/**
 * The four rounds end to end with every party in process (real X25519, ChaCha20, Shamir, secretbox):
 * exactness against a float64 reference, dropouts at each step up to the threshold and beyond,
 * bad shares, and the client's own safety rules.
 */
import { describe, it, expect } from 'vitest';
import type { SecAggClient } from '../../../privacy/secagg/client.js';
import { secAggConfig, type SecAggSettings } from '../../../privacy/secagg/config.js';
import { inProcessParties, runInProcess, type DropoutSchedule } from '../../../privacy/secagg/in-process.js';
import type { SecAggServer } from '../../../privacy/secagg/server.js';
import { neighbourhood } from '../../../privacy/secagg/neighbourhood.js';
import { seededTestSource } from '../../../privacy/random.js';
import { isFedloraError, type ErrorCode } from '../../../shared/errors.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `client-${String(i).padStart(2, '0')}`);

function settings(n: number, extra: Partial<SecAggSettings> = {}): SecAggSettings {
  return { context: 'job-1/round-1', clients: ids(n), vectorLength: 257, graphSeed: 'graph', ...extra };
}

/** Seeded inputs in [-1, 1]; `grid` puts them on multiples of 2^-18, which quantise without rounding (c = 8, T = 2^22). */
function inputs(clients: readonly string[], length: number, grid = false): Map<string, Float64Array> {
  const r = seededTestSource('inputs');
  return new Map(
    clients.map((c) => [
      c,
      Float64Array.from({ length }, () => {
        const u = r.nextUint32() / 2 ** 32;
        return grid ? Math.round((2 * u - 1) * 2 ** 18) / 2 ** 18 : 2 * u - 1;
      }),
    ]),
  );
}

/** The float64 reference: a plain loop over the clients that are in the sum. */
function plainSum(values: Map<string, Float64Array>, who: readonly string[]): Float64Array {
  const out = new Float64Array(values.values().next().value!.length);
  for (const c of who) values.get(c)!.forEach((v, i) => (out[i]! += v));
  return out;
}

function expectCode(fn: () => unknown, code: ErrorCode, text?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isFedloraError(e, code), String(e)).toBe(true);
    if (text) expect((e as Error).message).toMatch(text);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

describe('secure aggregation: the unmasked sum', () => {
  it('is exactly the plain sum when the inputs quantise without rounding (the masks cancel exactly)', () => {
    const config = secAggConfig(settings(9));
    const values = inputs(config.clients, config.vectorLength, true);
    const { result } = runInProcess(config, values);
    expect(result.survivors).toEqual(config.clients);
    expect(result.sum).toEqual(plainSum(values, config.clients));
  });

  it('is within n 2c / T of the plain sum with stochastic rounding, on a sparse graph (n = 40, k = 10)', () => {
    const config = secAggConfig(settings(40, { degree: 10, clipRange: 2, quantRange: 2 ** 16 }));
    expect(config.threshold).toBe(6);
    const values = inputs(config.clients, config.vectorLength);
    const { result } = runInProcess(config, values);
    const reference = plainSum(values, config.clients);
    expect(result.errorBound).toBeCloseTo((40 * 4) / 2 ** 16, 12);
    let maxErr = 0;
    result.sum.forEach((v, i) => (maxErr = Math.max(maxErr, Math.abs(v - reference[i]!))));
    expect(maxErr).toBeLessThan(result.errorBound);
    expect(maxErr).toBeGreaterThan(0); // rounding happened: the test is not vacuous
  });
});

describe('secure aggregation: dropouts (complete graph n = 10, t = 5: up to 4 of a neighbourhood may go)', () => {
  const config = secAggConfig(settings(10));
  const values = inputs(config.clients, config.vectorLength, true);
  const four = config.clients.slice(3, 7);
  const five = config.clients.slice(3, 8);
  const steps = ['advertise', 'shareKeys', 'maskedInput', 'unmasking'] as const;

  it.each(steps)('4 clients dropping at %s: the sum of the clients in it, exactly', (step) => {
    const { result } = runInProcess(config, values, { [step]: four });
    const inSum = step === 'unmasking' ? config.clients : config.clients.filter((c) => !four.includes(c));
    expect(result.survivors).toEqual(inSum);
    expect(result.dropped[step]).toEqual(four);
    expect(result.sum).toEqual(plainSum(values, inSum));
  });

  it('one client dropping at each step (4 in all)', () => {
    const c = config.clients;
    const schedule: DropoutSchedule = { advertise: [c[0]!], shareKeys: [c[1]!], maskedInput: [c[2]!], unmasking: [c[3]!] };
    const { result } = runInProcess(config, values, schedule);
    expect(result.survivors).toEqual(c.slice(3));
    expect(result.sum).toEqual(plainSum(values, c.slice(3)));
  });

  it.each(steps)('5 clients dropping at %s: fails with FL_ERR_SECAGG_DROPOUTS and a reason, never a wrong sum', (step) => {
    expectCode(() => runInProcess(config, values, { [step]: five }), 'FL_ERR_SECAGG_DROPOUTS', /fewer than (the threshold 5|minSurvivors 5)/);
  });

  it('on a sparse graph, a client that keeps fewer than t live neighbours fails the round before masking, naming it', () => {
    const sparse = secAggConfig(settings(30, { degree: 6 })); // t = 4: each neighbourhood may lose 2 of 6
    const vals = inputs(sparse.clients, sparse.vectorLength, true);
    const graph = neighbourhood(sparse.clients, sparse.degree, sparse.graphSeed);
    const around = [...graph.get('client-00')!];
    const two = runInProcess(sparse, vals, { shareKeys: around.slice(0, 2) }).result;
    expect(two.sum).toEqual(plainSum(vals, two.survivors));
    expectCode(() => runInProcess(sparse, vals, { advertise: around.slice(0, 3) }), 'FL_ERR_SECAGG_DROPOUTS', /has [0-3] live neighbours, fewer than the threshold 4/);
  });
});

describe('secure aggregation: malicious clients', () => {
  const config = secAggConfig(settings(10));
  const values = inputs(config.clients, config.vectorLength, true);

  it('a wrong share is detected by its commitment, named, and left out; the sum is still exact', () => {
    const liar = 'client-02';
    const { result } = runInProcess(config, values, { maskedInput: ['client-09'] }, undefined, {
      unmaskResponse: (msg) =>
        msg.from !== liar
          ? msg
          : {
              ...msg,
              selfSeedShares: msg.selfSeedShares.map((s) => ({ ...s, y: s.y.map((b, i) => (i === 32 ? b ^ 1 : b)) })),
              secretKeyShares: msg.secretKeyShares.map((s) => ({ ...s, y: s.y.map((b, i) => (i === 32 ? b ^ 1 : b)) })),
            },
    });
    expect(result.badShares.length).toBe(9); // 8 survivors' seeds + the dropped client's key
    expect(new Set(result.badShares.map((b) => b.from))).toEqual(new Set([liar]));
    expect(result.sum).toEqual(plainSum(values, config.clients.slice(0, 9)));
  });

  it('when bad shares leave fewer than t good ones, the round fails with FL_ERR_SECAGG_BAD_SHARE naming the senders', () => {
    const liars = new Set(config.clients.slice(0, 5));
    expectCode(
      () =>
        runInProcess(config, values, {}, undefined, {
          unmaskResponse: (msg) => (liars.has(msg.from) ? { ...msg, selfSeedShares: msg.selfSeedShares.map((s) => ({ ...s, y: new Uint8Array(33) })) } : msg),
        }),
      'FL_ERR_SECAGG_BAD_SHARE',
      /do not match their commitments/,
    );
  });

  it('a client that commits to a seed its shares do not rebuild is caught when its seed is rebuilt', () => {
    expectCode(
      () => runInProcess(config, values, {}, undefined, { shareKeys: (msg) => (msg.from === 'client-04' ? { ...msg, selfSeedCommitment: new Uint8Array(32).fill(9) } : msg) }),
      'FL_ERR_SECAGG_BAD_SHARE',
      /'client-04' dealt inconsistent shares/,
    );
  });

  it('a sealed share altered in transit is refused by its recipient, naming the sender', () => {
    const { server, clients: parties } = inProcessParties(config);
    const clients = [...parties.values()];
    clients.forEach((c) => server.receiveAdvertise(c.advertiseKeys()));
    const keys = server.closeAdvertise();
    clients.forEach((c) => server.receiveShareKeys(c.shareKeys(keys.get(c.id)!)));
    const delivery = server.closeShareKeys().get('client-00')!;
    const tampered = { shares: delivery.shares.map((s, i) => (i === 0 ? { ...s, sealed: s.sealed.map((b, j) => (j === 40 ? b ^ 1 : b)) } : s)) };
    expectCode(() => clients[0]!.maskedInput(tampered, values.get('client-00')!), 'FL_ERR_SECAGG_BAD_SHARE', new RegExp(`'${delivery.shares[0]!.from}' does not open`));
  });
});

describe('secure aggregation: a client protects itself from a curious coordinator', () => {
  const config = secAggConfig(settings(6));
  const values = inputs(config.clients, config.vectorLength, true);

  function toUnmasking(): { clients: SecAggClient[]; server: SecAggServer } {
    const { server, clients: parties } = inProcessParties(config);
    const clients = [...parties.values()];
    clients.forEach((c) => server.receiveAdvertise(c.advertiseKeys()));
    const keys = server.closeAdvertise();
    clients.forEach((c) => server.receiveShareKeys(c.shareKeys(keys.get(c.id)!)));
    const deliveries = server.closeShareKeys();
    clients.forEach((c) => server.receiveMaskedInput(c.maskedInput(deliveries.get(c.id)!, values.get(c.id)!)));
    return { clients, server };
  }

  it('refuses to reveal both secrets of a client listed as survivor and dropped', () => {
    const { clients } = toUnmasking();
    expectCode(() => clients[0]!.consistencyCheck({ survivors: config.clients, dropped: ['client-01'] }), 'FL_ERR_SECAGG_PROTOCOL', /both as a survivor and as dropped/);
  });

  it('answers one unmasking request only: a second one (sets swapped) reveals nothing', () => {
    const { clients, server } = toUnmasking();
    const view = server.closeMaskedInput();
    clients.forEach((c) => server.receiveViewSignature(c.consistencyCheck(view)));
    const first = clients[0]!.unmask(server.closeConsistency().get('client-00')!);
    expect(first.selfSeedShares.length).toBe(5);
    expectCode(() => clients[0]!.unmask({ survivors: ['client-00', 'client-02', 'client-03', 'client-04'], dropped: ['client-01'], signatures: [] }), 'FL_ERR_SECAGG_PROTOCOL', /step 'done'/);
  });

  it('refuses to unmask a sum of fewer than minSurvivors clients', () => {
    const { clients } = toUnmasking();
    expect(config.minSurvivors).toBe(3); // n = 6: k = 5, t = 3
    expectCode(() => clients[0]!.consistencyCheck({ survivors: ['client-00', 'client-01'], dropped: [] }), 'FL_ERR_SECAGG_DROPOUTS', /fewer than minSurvivors 3/);
  });

  it('the coordinator refuses messages out of step, twice, or from strangers', () => {
    const { server, clients } = inProcessParties(config);
    const c = clients.get('client-00')!;
    const msg = c.advertiseKeys();
    server.receiveAdvertise(msg);
    expectCode(() => server.receiveAdvertise(msg), 'FL_ERR_SECAGG_PROTOCOL', /twice/);
    expectCode(() => server.receiveAdvertise({ ...msg, from: 'eve' }), 'FL_ERR_SECAGG_PROTOCOL', /'eve'/);
    expectCode(() => server.receiveMaskedInput({ from: 'client-00', masked: new Uint32Array(257) }), 'FL_ERR_SECAGG_PROTOCOL', /expected at 'mask'/);
  });
});

describe('secure aggregation: settings', () => {
  it('two clients: k = 1, t = 1, at least 2 in the sum (nothing can drop)', () => {
    const config = secAggConfig(settings(2));
    expect([config.degree, config.threshold, config.minSurvivors]).toEqual([1, 1, 2]);
    const values = inputs(config.clients, config.vectorLength, true);
    expect(runInProcess(config, values).result.sum).toEqual(plainSum(values, config.clients));
    expectCode(() => runInProcess(config, values, { maskedInput: ['client-01'] }), 'FL_ERR_SECAGG_DROPOUTS', /fewer than minSurvivors 2/);
  });

  it('refuses a threshold of half the neighbourhood or less, an odd degree, and one client', () => {
    expectCode(() => secAggConfig(settings(20, { degree: 8, threshold: 4 })), 'FL_ERR_SECAGG_CONFIG', /threshold must be an integer in \(4, 8\]/);
    expectCode(() => secAggConfig(settings(20, { degree: 7 })), 'FL_ERR_SECAGG_CONFIG', /degree/);
    expectCode(() => secAggConfig(settings(1)), 'FL_ERR_SECAGG_CONFIG', /at least 2 clients/);
    expectCode(() => secAggConfig(settings(600, { quantRange: 2 ** 23 })), 'FL_ERR_SECAGG_CONFIG', /at most 511 clients/);
    expectCode(() => secAggConfig(settings(4, { clients: ['a', 'a', 'b', 'c'] })), 'FL_ERR_SECAGG_CONFIG', /twice/);
  });
});

describe('secure aggregation: random dropouts (property)', () => {
  it('either the exact sum of the clients in it, or FL_ERR_SECAGG_DROPOUTS; never a wrong sum', async () => {
    const fc = (await import('fast-check')).default;
    let succeeded = 0;
    let failed = 0;
    fc.assert(
      fc.property(fc.integer({ min: 8, max: 16 }), fc.integer(), fc.array(fc.integer({ min: 0, max: 19 }), { minLength: 16, maxLength: 16 }), (n, seed, when) => {
        const degree = n >= 12 ? 6 : n - 1;
        const config = secAggConfig(settings(n, { degree, graphSeed: `g${seed}`, vectorLength: 17 }));
        const values = inputs(config.clients, 17, true);
        // when[i]: 0-4 the step client i drops at, 5-19 stays (a quarter of the clients drop, on average).
        const steps = ['advertise', 'shareKeys', 'maskedInput', 'consistency', 'unmasking'] as const;
        const schedule: Record<string, string[]> = {};
        config.clients.forEach((c, i) => {
          const w = when[i]!;
          if (w < 5) (schedule[steps[w]!] ??= []).push(c);
        });
        try {
          const { result } = runInProcess(config, values, schedule);
          expect(result.sum).toEqual(plainSum(values, result.survivors));
          const gone = new Set([...(schedule.advertise ?? []), ...(schedule.shareKeys ?? []), ...(schedule.maskedInput ?? [])]);
          expect(result.survivors).toEqual(config.clients.filter((c) => !gone.has(c)));
          succeeded++;
        } catch (e) {
          expect(isFedloraError(e, 'FL_ERR_SECAGG_DROPOUTS'), String(e)).toBe(true);
          failed++;
        }
      }),
      { numRuns: 25 },
    );
    expect(succeeded).toBeGreaterThan(0); // the property is not vacuous
    expect(succeeded + failed).toBe(25);
  });
});
