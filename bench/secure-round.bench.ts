/**
 * `npm run bench secure-round`: what secure aggregation costs in the running system, not just in
 * the protocol (bench/secagg.bench.ts has the protocol at Fed-SB and FFA sizes up to 500 clients).
 * Measured: `fedlora sim` FedAvg jobs on digits (mlp [16], rank 4, every client every round, IID,
 * 2 worker threads) with and without `--secure-aggregation`, for 10 and 100 clients: the median
 * seconds per round (offer to commit, rounds 2-4, the coordinator's record) and the bytes each
 * client uploads per round (plain: the sealed envelope; secure: the JSON of all four steps as on
 * the wire: keys, sealed shares with commitments, the masked vector in base64, revealed shares). Baseline: the plain job in the same run, same seed and clients.
 * Secure rounds add four socket exchanges, k + 1 mask expansions per client and the unmasking;
 * with this small update (1.4 k values) the exchanges dominate.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineLine } from './machine.js';
import { median } from './timing.js';
import { simOptions } from '../simulations/cli.js';
import { runSim } from '../simulations/run-sim.js';

async function roundFigures(clients: number, secure: boolean): Promise<{ seconds: number; bytesUp: number; accuracy: number }> {
  const out = mkdtempSync(join(tmpdir(), `fedlora-bench-secure-${clients}-`));
  const options = simOptions(
    { data: 'digits', clients, rounds: 4, strategy: 'fedavg', seed: 1, out, hidden: '16', pretrainEpochs: 5, partition: 'iid', epochs: 1, workers: 2, ...(secure && { secureAggregation: true }) },
    () => undefined,
  );
  const { report } = await runSim(options);
  const s = report.strategies.fedavg!;
  if (s.status !== 'completed') throw new Error(`the ${secure ? 'secure' : 'plain'} job with ${clients} clients ended ${s.status}`);
  return { seconds: median(s.rounds.slice(1).map((r) => r.seconds)), bytesUp: s.bytesUpPerClientRound, accuracy: s.final.accuracy ?? NaN };
}

export async function run(): Promise<void> {
  console.log(machineLine());
  console.log('| clients | plain s/round | secure s/round | ratio | plain up B/client | secure up B/client | ratio | accuracy plain / secure |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const n of [10, 100]) {
    const plain = await roundFigures(n, false);
    const secure = await roundFigures(n, true);
    console.log(
      `| ${n} | ${plain.seconds.toFixed(3)} | ${secure.seconds.toFixed(3)} | x${(secure.seconds / plain.seconds).toFixed(2)} | ${plain.bytesUp.toFixed(0)} | ${secure.bytesUp.toFixed(0)} | x${(secure.bytesUp / plain.bytesUp).toFixed(2)} | ${(100 * plain.accuracy).toFixed(1)}% / ${(100 * secure.accuracy).toFixed(1)}% |`,
    );
  }
}
