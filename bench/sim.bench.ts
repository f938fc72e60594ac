/**
 * `npm run bench sim`: what the federation runtime costs on top of the local training it runs.
 * Measured: a `fedlora sim` FedAvg job (8 clients on digits, Dirichlet 0.5, every client every round,
 * 2 worker threads), median seconds per round (offer to commit, the coordinator's record).
 * Baseline in the same run: the same 8 clients' local training for one round (same base model,
 * partition, rank, epochs, batch and lr) done directly with the training engine in this thread,
 * one client after the other, divided by the 2 workers the sim trains on in parallel. The ratio is
 * the runtime's overhead factor: transport, envelopes, aggregation, commit, selection, evaluation
 * of the updates on local data, and the worker imbalance.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineLine } from './machine.js';
import { simOptions } from '../simulations/cli.js';
import { runSim } from '../simulations/run-sim.js';
import { loadSimTable, splitSimData } from '../simulations/dataset.js';
import { partitionRows } from '../simulations/partition.js';

export async function run(): Promise<void> {
  const seed = 1;
  const out = mkdtempSync(join(tmpdir(), 'fedlora-bench-sim-'));
  const options = simOptions({ preset: 'demo', strategy: 'fedavg', rounds: 6, seed, out }, () => undefined);
  const { report } = await runSim(options);
  const s = report.strategies.fedavg!;
  const roundSeconds = s.rounds.slice(1).map((r) => r.seconds).sort((a, b) => a - b);
  const medianRound = roundSeconds[Math.floor(roundSeconds.length / 2)]!;

  // Baseline: the same local training, directly.
  const { chooseBackend } = await import('../client/backend.js');
  await chooseBackend({ backend: 'wasm' });
  const { loadBaseModel } = await import('../client/agent/base-model.js');
  const { tableSource } = await import('../client/data/batches.js');
  const { subset } = await import('../client/data/table.js');
  const { train } = await import('../client/train/trainer.js');
  const data = await splitSimData(await loadSimTable('digits'), { testFraction: options.testFraction, publicFraction: options.publicFraction, seed, ...(options.publicLabels !== undefined && { publicLabels: options.publicLabels }) });
  const partition = partitionRows(data.federated.labels, options.clients, options.partitioner, seed, 2);
  const base = await loadBaseModel(join(out, 'base-model'));
  const modules = base.adaptable.map((m) => m.path);
  const times: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    for (const rows of partition) {
      const model = await base.build({ variant: 'lora', rank: 4, alpha: 4, modules, seed: rep });
      await train(model, tableSource(subset(data.federated, rows)), { epochs: options.epochs, batchSize: options.batchSize, lr: 0.01, seed: rep });
      model.dispose();
    }
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const sequential = times[1]!;
  const ideal = sequential / options.workers;
  console.log(machineLine());
  console.log(`sim fedavg, 8 clients, digits, mlp [64, 64], r 4, 2 epochs: median round ${medianRound.toFixed(3)} s (rounds 2-6), job ${s.wallSeconds.toFixed(1)} s, peak RSS ${report.peakRssMiB.toFixed(0)} MiB`);
  console.log(`baseline: the 8 clients' local training in one thread ${sequential.toFixed(3)} s per round (median of 3), / ${options.workers} workers = ${ideal.toFixed(3)} s`);
  console.log(`ratio sim round / ideal parallel training: ${(medianRound / ideal).toFixed(2)}x`);
}
