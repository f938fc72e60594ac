/**
 * Simulated dropout: a client offered a round leaves mid-training with probability p, drawn per
 * (client, round) from the seed; the coordinator commits each round with the clients that stayed.
 * The expected drops are computed here from the same seeded draws, independently of the worker.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../client/data/seeded-random.js';
import { runSim } from '../../simulations/run-sim.js';
import { simOptions } from '../../simulations/cli.js';

describe('--dropout', () => {
  it('drops the (client, round) pairs the seed draws, and every round commits with the others', async () => {
    const seed = 5;
    const p = 0.3;
    const clients = 5;
    const rounds = 2;
    const out = mkdtempSync(join(tmpdir(), 'fedlora-sim-dropout-'));
    const expected = Array.from({ length: rounds }, (_, r) => Array.from({ length: clients }, (_, c) => new SeededRandom(seed, `dropout:${c}:${r}`).nextFloat() < p).filter(Boolean).length);
    // the seed must exercise both cases: some clients drop, and enough stay for the minimum (k/2)
    expect(expected.some((d) => d > 0)).toBe(true);
    expect(expected.every((d) => clients - d >= Math.floor(clients / 2))).toBe(true);
    const options = simOptions({ data: 'digits', clients, rounds, strategy: 'fedavg', seed, out, hidden: '8', pretrainEpochs: 2, partition: 'iid', dropout: p, deadline: 20 }, () => undefined);
    const { report } = await runSim(options);
    const s = report.strategies.fedavg!;
    expect(s.status).toBe('completed');
    expect(s.droppedClientRounds).toBe(expected.reduce((a, b) => a + b, 0));
    expect(s.rounds.map((r) => r.participants)).toEqual(expected.map((d) => clients - d));
  }, 120_000);
});
