/**
 * Experiment 4 of docs/results.md, the language task: for each seed, one `fedlora sim --data
 * fortunes --baselines` run (the same base llama, split, partition and budget for every method),
 * then a table of test perplexity per category (= per client under `--partition category`) and on
 * the union, mean +- sample standard deviation over the seeds, for the base model, each federated
 * strategy, local-only LoRA and centralised LoRA.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simOptions } from './cli.js';
import { runSim } from './run-sim.js';
import { SimReportSchema, type SimReport } from './report.js';

/** What the experiment passes to `fedlora sim` (the CLI's names); the rest are FORTUNES_DEFAULTS. FFA-LoRA trains only B: lr 0.05 as in the demo (the baselines use FedAvg's 0.01). */
export const LANGUAGE_EXPERIMENT_OPTIONS = { data: 'fortunes', strategy: 'fedavg,ffa', lr: '0.01,ffa=0.05', baselines: true } as const;

interface Stat {
  mean: number;
  std: number;
  values: number[];
}

function stat(values: number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const std = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, values };
}

/** One method's perplexities in one report: per category and union (null: not measured). */
function methodRows(r: SimReport): Array<{ method: string; byCategory: Record<string, number>; union: number; own?: number }> {
  const rows: Array<{ method: string; byCategory: Record<string, number>; union: number; own?: number }> = [
    { method: 'base model (no adapter)', byCategory: r.base.perplexityByCategory ?? {}, union: r.base.perplexity ?? Number.NaN },
  ];
  for (const [name, s] of Object.entries(r.strategies)) {
    rows.push({ method: `federated ${name}${s.status === 'completed' ? '' : ` (${s.status})`}`, byCategory: s.final.perplexityByCategory ?? {}, union: s.final.perplexity ?? Number.NaN });
  }
  const b = r.baselines;
  if (b !== undefined) {
    // local-only: client k's adapter on its own category; union: mean over the clients' adapters
    const own: Record<string, number> = {};
    for (const l of b.local) if (l.categories.length === 1) own[l.categories[0]!] = l.byCategory[l.categories[0]!]!;
    rows.push({ method: 'local-only (own adapter per category; union: mean over clients)', byCategory: own, union: b.localMeanPerplexity, own: b.localMeanOwnPerplexity });
    rows.push({ method: 'centralised (one adapter, union of the training data)', byCategory: b.centralised.byCategory, union: b.centralised.perplexity });
  }
  return rows;
}

/** Runs the seeds, writes `<root>/summary.{json,md}` and returns the markdown. */
export async function runLanguageExperiment(seeds: readonly number[], root: string, extra: Record<string, unknown> = {}): Promise<string> {
  const reports: SimReport[] = [];
  for (const seed of seeds) {
    const out = join(root, `fortunes-seed${seed}`);
    const t0 = performance.now();
    const options = simOptions({ ...LANGUAGE_EXPERIMENT_OPTIONS, ...extra, seed, out }, (line) => process.stderr.write(`seed ${seed} ${line}\n`));
    reports.push((await runSim(options)).report);
    process.stderr.write(`seed ${seed}: ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  return summariseLanguage(seeds, reports, root);
}

/** The summary again from the report.json files a run left in `<root>/fortunes-seed<S>/` (no training). */
export function resummariseLanguage(seeds: readonly number[], root: string): string {
  const reports = seeds.map((seed) => SimReportSchema.parse(JSON.parse(readFileSync(join(root, `fortunes-seed${seed}`, 'report.json'), 'utf8'))));
  return summariseLanguage(seeds, reports, root);
}

function summariseLanguage(seeds: readonly number[], reports: readonly SimReport[], root: string): string {
  const cats = Object.keys(reports[0]!.base.perplexityByCategory ?? {});
  const perSeed = reports.map(methodRows);
  const methods = perSeed[0]!.map((m) => m.method);
  const table = methods.map((method, i) => {
    const at = perSeed.map((rows) => rows[i]!);
    const own = at.map((x) => x.own).filter((v): v is number => v !== undefined);
    return {
      method,
      byCategory: Object.fromEntries(cats.map((c) => [c, stat(at.map((x) => x.byCategory[c] ?? Number.NaN))])),
      union: stat(at.map((x) => x.union)),
      ...(own.length > 0 && { own: stat(own) }),
    };
  });
  const r0 = reports[0]!;
  const cfg = r0.config as Record<string, unknown> & { language?: { base: Record<string, number>; perCategory: number; targetModules: unknown } };
  const pm = (s: Stat): string => (Number.isNaN(s.mean) ? '-' : `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)}`);
  const show = (v: unknown): string => (typeof v === 'object' ? JSON.stringify(v) : String(v));
  const budget = `${show(cfg.rounds)} rounds x ${show(cfg.epochs)} local epoch(s), batch ${show(cfg.batchSize)}, AdamW lr ${show(cfg.lr)}, rank ${show(cfg.rank)}, LoRA on ${show(cfg.language?.targetModules)}`;
  const md = [
    '### Language task: fortunes by category, federated vs local-only vs centralised LoRA',
    '',
    `seeds ${seeds.join(', ')}; test perplexity (byte-level, exp of the mean NLL per predicted token) of each category's held-out quotes and of their union; mean ± sample standard deviation over the seeds. Command: \`npm run experiment -- language --seeds ${seeds.join(',')}\``,
    '',
    `Clients ${cfg.clients} (one category each), ${r0.data.federatedRows} training and ${r0.data.testRows} test quotes; budget per method: ${budget}. Base: ${JSON.stringify(cfg.language?.base)}, sha256 ${r0.base.sha256.slice(0, 16)}.`,
    '',
    `| method | ${cats.join(' | ')} | union |`,
    `| --- | ${cats.map(() => '---').join(' | ')} | --- |`,
    ...table.map((t) => `| ${t.method} | ${cats.map((c) => pm(t.byCategory[c]!)).join(' | ')} | ${pm(t.union)} |`),
    '',
    ...table.filter((t) => t.own !== undefined).map((t) => `Local-only, mean over clients of the own-category perplexity: ${pm(t.own!)}.`),
    '',
    `Union perplexity per seed (${seeds.join(' / ')}): ${table.map((t) => `${t.method.split(' (')[0]} ${t.union.values.map((v) => v.toFixed(2)).join(' / ')}`).join('; ')}.`,
    '',
    `Wall time per seed (whole sim: both jobs, baselines, evaluation): ${reports.map((r) => `${r.wallSeconds.toFixed(0)} s`).join(', ')}; per job: ${Object.keys(r0.strategies).map((n) => `${n} ${reports.map((r) => r.strategies[n]!.wallSeconds.toFixed(0)).join('/')} s`).join(', ')}; baselines ${reports.map((r) => r.baselines?.wallSeconds.toFixed(0) ?? '-').join('/')} s.`,
    '',
  ].join('\n');
  writeFileSync(join(root, 'summary.json'), `${JSON.stringify({ name: 'language', seeds, categories: cats, table, perSeed }, null, 2)}\n`);
  writeFileSync(join(root, 'summary.md'), md);
  return md;
}
