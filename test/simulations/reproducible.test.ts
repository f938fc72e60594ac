/**
 * A sim is reproducible from its seed: two real runs (real coordinator, SQLite, agents in worker
 * threads racing to connect) with the same options give identical per-round metrics. Before the
 * coordinator keyed clients by their enrolment token's creation index, a client's LoRA seed,
 * rank and aggregation position followed the random client id and the connection order.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSim } from '../../simulations/run-sim.js';
import { simOptions } from '../../simulations/cli.js';
import type { SimReport } from '../../simulations/report.js';

/** Per-round numbers that must repeat exactly (wall times and ids aside). */
function metrics(report: SimReport): unknown {
  return Object.fromEntries(
    Object.entries(report.strategies).map(([name, s]) => [
      name,
      { status: s.status, ranks: s.ranks, rounds: s.rounds.map((r) => ({ round: r.round, participants: r.participants, accuracy: r.accuracy, loss: r.loss, trainLoss: r.trainLoss })) },
    ]),
  );
}

async function runOnce(): Promise<SimReport> {
  const out = mkdtempSync(join(tmpdir(), 'fedlora-sim-repro-'));
  // Mixed ranks make each client's rank depend on which token it holds; two workers make the connection order race.
  const options = simOptions(
    { data: 'digits', clients: 3, rounds: 2, strategy: 'fedavg,flora', ranks: [2, 4, 8], seed: 3, out, hidden: '8', pretrainEpochs: 2, partition: 'dirichlet', alpha: 1, workers: 2 },
    () => undefined,
  );
  return (await runSim(options)).report;
}

describe('fedlora sim reproducibility', () => {
  it('gives identical per-round accuracies and losses for the same seed in two runs', async () => {
    const first = await runOnce();
    const second = await runOnce();
    for (const s of Object.values(first.strategies)) expect(s.status).toBe('completed');
    expect(metrics(second)).toEqual(metrics(first));
  }, 240_000);
});
