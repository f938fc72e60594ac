/**
 * `fedlora aggregate` and `fedlora demo`. The actions load the aggregation code lazily, so other
 * commands do not pay for it.
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';
import { STRATEGY_TRAITS } from '../shared/protocol/job-spec.js';

/** "3,1,2.5" -> [3, 1, 2.5]; each must be a finite number > 0. */
export function parseWeights(text: string): number[] {
  return text.split(',').map((part, i) => {
    const v = Number(part.trim());
    if (part.trim() === '' || !Number.isFinite(v) || v <= 0) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--weights: value ${i + 1} ('${part}') must be a finite number > 0 (the client's example count)`, { field: 'weights' });
    }
    return v;
  });
}

function parsePositiveInteger(option: string, text: string): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${option} must be an integer >= 1, got '${text}'`, { field: option });
  return v;
}

export function register(program: Command): void {
  program
    .command('aggregate')
    .description('aggregate client LoRA adapters (PEFT directories) with a strategy and write the result as a PEFT adapter directory')
    .requiredOption('--strategy <name>', 'fedavg | flora | ffa | fedsb (docs/strategies.md)')
    .requiredOption('--out <dir>', 'output PEFT adapter directory (created)')
    .option('--weights <n1,n2,...>', "each client's example count n_k, in the order of the directories (default: equal)")
    .option('--compress-rank <k>', 'flora: truncate the stacked update to rank k by SVD and report the error')
    .option('--json', 'print the report as JSON')
    .argument('<clientDirs...>', 'client adapter directories (adapter_config.json + adapter_model.safetensors; fedsb: with fedsb_R)')
    .action(async (clientDirs: string[], opts: { strategy: string; out: string; weights?: string; compressRank?: string; json?: boolean }) => {
      const { aggregateAdapterDirs } = await import('./aggregate-dirs.js');
      const weights = opts.weights === undefined ? undefined : parseWeights(opts.weights);
      const compressRank = opts.compressRank === undefined ? undefined : parsePositiveInteger('--compress-rank', opts.compressRank);
      const { report, compressionError, ranks } = await aggregateAdapterDirs({ strategy: opts.strategy, clientDirs, weights, outDir: opts.out, compressRank });
      const summary = { out: opts.out, ...report, ranks, ...(compressionError !== undefined && { compressionError }) };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
        return;
      }
      const lines = [`${report.strategy}: aggregated ${report.clients} client adapters (${report.totalExamples} examples) into ${opts.out}`];
      const rankSet = [...new Set(Object.values(ranks))];
      lines.push(`  modules: ${Object.keys(ranks).length}, output rank ${rankSet.join('/')}`);
      if (report.noise) lines.push(`  aggregation noise ||s B_avg A_avg - sum p_k s_k B_k A_k|| / ||sum p_k s_k B_k A_k||: ${report.noise.overall.toExponential(3)} (${report.noise.method})`);
      if (STRATEGY_TRAITS[report.strategy].exactProduct) lines.push('  exact: s B A of the output equals sum_k p_k s_k B_k A_k to float32 rounding');
      if (compressionError !== undefined) lines.push(`  truncated to rank ${compressRank}: relative Frobenius error ${compressionError.toExponential(3)}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program
    .command('demo')
    .description('make seeded synthetic client adapters, aggregate them with every strategy through `fedlora aggregate`\'s code path, and print an exactness table')
    .option('--out <dir>', 'where to write the client and aggregate adapter directories (default: a new temporary directory)')
    .option('--clients <k>', 'number of clients', '4')
    .option('--seed <seed>', 'job seed', 'fedlora-demo')
    .option('--json', 'print the table as JSON')
    .action(async (opts: { out?: string; clients: string; seed: string; json?: boolean }) => {
      const { runDemo, formatDemoTable } = await import('./demo.js');
      const result = await runDemo({ outDir: opts.out, clients: parsePositiveInteger('--clients', opts.clients), seed: opts.seed });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatDemoTable(result));
    });
}
