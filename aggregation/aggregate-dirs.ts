/**
 * The one code path of `fedlora aggregate` and `fedlora demo`: read client PEFT adapter directories
 * one at a time into a strategy's running aggregation, write the aggregate as a PEFT adapter
 * directory. Errors name the client directory, the tensor and the problem.
 */
import { writePeftAdapterDir, readPeftAdapterDir } from '../shared/peft.js';
import { FedloraError } from '../shared/errors.js';
import { STRATEGY_TRAITS } from '../shared/protocol/job-spec.js';
import { compressFloraAdapter } from './flora.js';
import { createStrategy } from './registry.js';
import type { AggregationReport, RoundResult } from './strategy.js';

export interface AggregateDirsOptions {
  readonly strategy: string;
  readonly clientDirs: readonly string[];
  /** n_k per client directory; all 1 when absent. */
  readonly weights?: readonly number[];
  readonly outDir: string;
  /** flora: truncate the stacked update to this rank (truncated SVD), reporting the error. */
  readonly compressRank?: number;
  /** fedavg's noise figure. @default 'exact' (the command reads few clients; see fedavg.ts) */
  readonly fedavgNoise?: 'exact' | 'sketch' | 'off';
}

export interface AggregateDirsResult {
  readonly report: AggregationReport;
  readonly result: RoundResult;
  /** flora with compressRank: the relative Frobenius error of the truncation. */
  readonly compressionError?: number;
  /** Rank of each output module. */
  readonly ranks: Readonly<Record<string, number>>;
}

/**
 * Aggregates client adapter directories with a registered strategy and writes the result.
 * fedsb output: lora_B holds B R (PEFT computes s B R A) and fedsb_R / fedsb_B keep the exact factors.
 */
export async function aggregateAdapterDirs(options: AggregateDirsOptions): Promise<AggregateDirsResult> {
  const strategy = createStrategy(options.strategy, { fedavg: { noise: options.fedavgNoise ?? 'exact' } });
  if (options.clientDirs.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'aggregate: name at least one client adapter directory');
  const weights = options.weights ?? options.clientDirs.map(() => 1);
  if (weights.length !== options.clientDirs.length) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `aggregate: --weights has ${weights.length} values for ${options.clientDirs.length} client directories`);
  }
  weights.forEach((w, i) => {
    if (!(Number.isFinite(w) && w > 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `aggregate: weight ${i + 1} (for ${options.clientDirs[i]}) must be a finite number > 0, got ${w}`);
  });
  if (options.compressRank !== undefined && !STRATEGY_TRAITS[strategy.name].freshEachRound) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `aggregate: --compress-rank applies to flora only, not ${options.strategy}`);
  }
  const round = strategy.begin(null);
  for (const [i, dir] of options.clientDirs.entries()) {
    // One directory at a time: only the running sum stays in memory (flora's stack excepted).
    round.add({ adapter: await readPeftAdapterDir(dir), numExamples: weights[i]!, source: dir });
  }
  const result = round.finish();
  let output = result.aggregate;
  let compressionError: number | undefined;
  if (options.compressRank !== undefined) {
    const compressed = compressFloraAdapter(output, options.compressRank);
    output = compressed.adapter;
    compressionError = compressed.relativeError;
  }
  await writePeftAdapterDir(options.outDir, output, output.layout.variant === 'fedsb' ? { foldFedSb: true, includeFedSbR: true } : {});
  const ranks = Object.fromEntries(output.layout.modules.map((m) => [m.path, m.rank]));
  return { report: result.report, result: { ...result, aggregate: output }, compressionError, ranks };
}
