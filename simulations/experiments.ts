/**
 * The experiments of docs/results.md, each a set of `fedlora sim` runs (the demo preset's
 * federation with one thing varied) over several seeds, summarised as mean +- standard deviation
 * over the seeds. Run one with
 *
 *   node --import tsx simulations/experiments.ts <name> [--seeds 1,2,3] [--variants a,b] [--out out/experiments]
 *
 * `language` (experiment 4, the llama across fortune categories) is language-experiment.ts;
 * `language --summarise-only` rebuilds its table from the report.json files of an earlier run.
 *
 * Each run's report.json/report.html stays in `<out>/<name>/<variant>-seed<S>/`, and the summary
 * (JSON and a markdown table) in `<out>/<name>/summary.{json,md}`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simOptions } from './cli.js';
import { runSim } from './run-sim.js';
import type { SimReport } from './report.js';

interface Variant {
  readonly name: string;
  /** `fedlora sim` options (the CLI's names), on top of the demo preset. */
  readonly options: Record<string, unknown>;
}

const EXPERIMENTS: Record<string, { readonly title: string; readonly variants: readonly Variant[] }> = {
  'hetero-ranks': {
    title: 'Heterogeneous ranks: FedAvg with zero-padding vs FLoRA stacking',
    // FedAvg with per-client ranks zero-pads the aggregate to r_max; each client starts from the
    // global cut to its own rank (HetLoRA, client/agent/rank-truncation.ts). Uniform ranks 2 and 8
    // bracket the mix.
    variants: [
      { name: 'ranks-2-4-8', options: { strategy: 'fedavg,flora', ranks: [2, 4, 8] } },
      { name: 'rank-2', options: { strategy: 'fedavg,flora', rank: '2' } },
      { name: 'rank-8', options: { strategy: 'fedavg,flora', rank: '8' } },
    ],
  },
  dp: {
    title: 'Client-side DP-SGD at epsilon 1, 3, 6 (delta 1e-5): FFA-LoRA vs FedAvg-LoRA vs Fed-SB',
    variants: [
      ...[1, 3, 6].map((eps) => ({ name: `eps-${eps}`, options: { strategy: 'fedavg,ffa,fedsb', dpEpsilon: eps, dpClip: 1 } })),
      // control: FedAvg at the learning rate FFA and Fed-SB use, so the comparison is not only the lr
      ...[3, 6].map((eps) => ({ name: `eps-${eps}-fedavg-lr0.05`, options: { strategy: 'fedavg', dpEpsilon: eps, dpClip: 1, lr: '0.05' } })),
    ],
  },
  communication: {
    title: 'Communication against accuracy, the four strategies (demo federation)',
    variants: [{ name: 'demo', options: {} }],
  },
  dirichlet: {
    title: 'Non-IID sweep: Dirichlet alpha 0.1, 1, 100',
    variants: [0.1, 1, 100].map((alpha) => ({ name: `alpha-${alpha}`, options: { alpha } })),
  },
};

function meanStd(xs: readonly number[]): { mean: number; std: number; n: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

async function main(argv: string[]): Promise<void> {
  const name = argv[0];
  if (name === undefined || !(name in EXPERIMENTS || name === 'language')) {
    process.stderr.write(`usage: node --import tsx simulations/experiments.ts <${[...Object.keys(EXPERIMENTS), 'language'].join('|')}> [--seeds 1,2,3] [--out DIR]\n`);
    process.exitCode = 2;
    return;
  }
  const arg = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const seeds = (arg('--seeds') ?? '1,2,3').split(',').map(Number);
  if (name === 'language') {
    // experiment 4: its own runs and table (language-experiment.ts)
    const root = join(arg('--out') ?? 'out/experiments', name);
    mkdirSync(root, { recursive: true });
    const { runLanguageExperiment, resummariseLanguage } = await import('./language-experiment.js');
    // --summarise-only: the table again from the reports of an earlier run
    // --strategy / --lr / --rank / --no-baselines: other strategies or settings on the same task (e.g. flora,fedsb), into another --out
    const extra = { ...(arg('--strategy') !== undefined && { strategy: arg('--strategy') }), ...(arg('--lr') !== undefined && { lr: arg('--lr') }), ...(arg('--rank') !== undefined && { rank: arg('--rank') }), ...(argv.includes('--no-baselines') && { baselines: false }) };
    process.stdout.write(argv.includes('--summarise-only') ? resummariseLanguage(seeds, root) : await runLanguageExperiment(seeds, root, extra));
    return;
  }
  const only = arg('--variants')?.split(',');
  const root = join(arg('--out') ?? 'out/experiments', name);
  mkdirSync(root, { recursive: true });
  const experiment = EXPERIMENTS[name]!;
  const rows: Array<{ variant: string; strategy: string; seeds: number[]; accuracy: ReturnType<typeof meanStd>; loss: ReturnType<typeof meanStd>; noise: ReturnType<typeof meanStd> | null; epsilon: ReturnType<typeof meanStd> | null; bytesUp: number; bytesDown: number; analyticUp: number; analyticDown: number; wall: ReturnType<typeof meanStd>; failed: number }> = [];
  for (const variant of experiment.variants.filter((v) => only === undefined || only.includes(v.name))) {
    const reports: SimReport[] = [];
    for (const seed of seeds) {
      const out = join(root, `${variant.name}-seed${seed}`);
      const options = simOptions({ preset: 'demo', seed, out, quiet: true, ...variant.options }, (line) => {
        if (/^\[\w+\] (job|round \d+\/\d+ .*)$/.test(line) && /job|round 10\//.test(line)) process.stderr.write(`${variant.name} seed ${seed} ${line}\n`);
      });
      reports.push((await runSim(options)).report);
    }
    for (const strategy of Object.keys(reports[0]!.strategies)) {
      const ss = reports.map((r) => r.strategies[strategy]!);
      const done = ss.filter((s) => s.status === 'completed');
      const noise = done.map((s) => s.rounds.at(-1)?.aggregationNoise).filter((v): v is number => typeof v === 'number');
      const eps = done.map((s) => s.epsilon).filter((v): v is number => v !== null);
      rows.push({
        variant: variant.name,
        strategy,
        seeds,
        accuracy: meanStd(done.map((s) => s.final.accuracy ?? Number.NaN)),
        loss: meanStd(done.map((s) => s.final.loss ?? Number.NaN)),
        noise: noise.length === 0 ? null : meanStd(noise),
        epsilon: eps.length === 0 ? null : meanStd(eps),
        bytesUp: meanStd(done.map((s) => s.bytesUpPerClientRound)).mean,
        bytesDown: meanStd(done.map((s) => s.bytesDownPerClientRound)).mean,
        analyticUp: ss[0]!.analytic.bytesUpPerClientRound,
        analyticDown: ss[0]!.analytic.bytesDownPerClientRound,
        wall: meanStd(done.map((s) => s.wallSeconds)),
        failed: ss.length - done.length,
      });
    }
  }
  const pm = (m: { mean: number; std: number }, scale = 1, digits = 1): string => `${(m.mean * scale).toFixed(digits)} ± ${(m.std * scale).toFixed(digits)}`;
  const md = [
    `### ${experiment.title}`,
    '',
    `seeds ${seeds.join(', ')}; mean ± sample standard deviation over the seeds; \`node --import tsx simulations/experiments.ts ${name} --seeds ${seeds.join(',')}\``,
    '',
    '| variant | strategy | test accuracy % | test loss | last-round aggregation noise | epsilon | bytes up / client / round (analytic) | bytes down / client / round (analytic) | wall s per job | failed |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.variant} | ${r.strategy} | ${pm(r.accuracy, 100)} | ${pm(r.loss, 1, 3)} | ${r.noise === null ? '-' : pm(r.noise, 1, 4)} | ${r.epsilon === null ? '-' : pm(r.epsilon, 1, 2)} | ${Math.round(r.bytesUp)} (${r.analyticUp}) | ${Math.round(r.bytesDown)} (${r.analyticDown}) | ${pm(r.wall)} | ${r.failed} |`),
    '',
  ].join('\n');
  writeFileSync(join(root, 'summary.json'), `${JSON.stringify({ name, title: experiment.title, seeds, rows }, null, 2)}\n`);
  writeFileSync(join(root, 'summary.md'), md);
  process.stdout.write(md);
}

await main(process.argv.slice(2));
