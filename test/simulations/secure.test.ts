/**
 * `fedlora sim --secure-aggregation`: the sum strategies run their rounds under SecAgg+ (real
 * coordinator and agents in worker threads), flora runs without it and says so, and the secure
 * FedAvg model is as good as the plain one (a broken mask would leave a model at chance, ~10%).
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSim } from '../../simulations/run-sim.js';
import { simOptions } from '../../simulations/cli.js';
import { isFedloraError } from '../../shared/errors.js';

const base = { data: 'digits', clients: 4, rounds: 2, seed: 2, hidden: '8', pretrainEpochs: 3, partition: 'iid', workers: 2 } as const;

describe('fedlora sim --secure-aggregation', () => {
  it('runs fedavg securely and flora without, and the secure model matches the plain one', async () => {
    const lines: string[] = [];
    const secure = await runSim(simOptions({ ...base, strategy: 'fedavg,flora', out: mkdtempSync(join(tmpdir(), 'fedlora-sim-secure-')), secureAggregation: true }, (l) => lines.push(l)));
    const plain = await runSim(simOptions({ ...base, strategy: 'fedavg', out: mkdtempSync(join(tmpdir(), 'fedlora-sim-plain-')) }, () => undefined));
    expect(secure.report.config.secureAggregation).toEqual({});
    expect(lines.some((l) => /\[flora\] secure aggregation cannot protect flora/.test(l))).toBe(true);
    const s = secure.report.strategies.fedavg!;
    const p = plain.report.strategies.fedavg!;
    expect(s.status).toBe('completed');
    expect(secure.report.strategies.flora!.status).toBe('completed');
    expect(s.rounds.map((r) => r.participants)).toEqual([4, 4]);
    // no per-client loss reaches the coordinator in a secure round
    expect(s.rounds.every((r) => r.trainLoss === null)).toBe(true);
    // IID shards of near-equal size: FedAvg's n_k weights are near-uniform, like the secure sum's
    expect(Math.abs(s.final.accuracy! - p.final.accuracy!)).toBeLessThan(0.05);
    expect(s.final.accuracy!).toBeGreaterThan(0.3);
  }, 180_000);

  it('refuses flags that cannot combine with it, naming them', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fedlora-sim-refused-'));
    const reasons = await Promise.all(
      [
        () => runSim(simOptions({ ...base, out, strategy: 'flora', secureAggregation: true }, () => undefined)),
        () => runSim(simOptions({ ...base, out, strategy: 'fedavg', secureAggregation: true, userDpNoise: 1 }, () => undefined)),
        () => runSim(simOptions({ ...base, out, strategy: 'fedavg', secureDpNoise: 1 }, () => undefined)),
      ].map(async (f) => {
        try {
          await f();
          return 'accepted';
        } catch (e) {
          return isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') ? e.message : String(e);
        }
      }),
    );
    expect(reasons[0]).toMatch(/cannot protect flora/);
    expect(reasons[1]).toMatch(/--user-dp-noise cannot combine with --secure-aggregation/);
    expect(reasons[2]).toMatch(/--secure-dp-noise needs --secure-aggregation/);
  });
});
