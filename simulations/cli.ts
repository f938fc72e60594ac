/**
 * `fedlora sim`: simulate a federation on this machine (run-sim.ts). Registered by bin/cli.ts
 * through `register(program)`; the heavy modules (tfjs, SQLite, socket.io) load inside the action.
 *
 *   fedlora sim --data digits --clients 8 --rounds 10 --strategy all --seed 1 --out out/sim
 *   fedlora sim --preset demo            (what `npm run demo` runs)
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';
import { DEFAULT_DELTA, STRATEGY_NAMES, type StrategyName } from '../shared/protocol/job-spec.js';
import { parsePartitioner } from './partition.js';
import type { SimOptions } from './run-sim.js';
import type { SimReport } from './report.js';
import { PRESETS, type PresetName } from './presets.js';
import { parsePerStrategy } from './per-strategy.js';
import { readdirSync } from 'node:fs';
import { DEFAULT_FORTUNE_CATEGORIES, FORTUNES_DIR } from './fortunes.js';
import type { LanguageOptions } from './language-task.js';

function num(option: string, test: (v: number) => boolean, rule: string): (value: string) => number {
  return (value) => {
    const v = Number(value);
    if (value.trim() === '' || !test(v)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} must be ${rule}, got '${value}'`, { option });
    return v;
  };
}
const int = (option: string, min: number): ((v: string) => number) => num(option, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
const positive = (option: string): ((v: string) => number) => num(option, (v) => Number.isFinite(v) && v > 0, 'a number > 0');
const fraction = (option: string): ((v: string) => number) => num(option, (v) => v >= 0 && v < 1, 'in [0, 1)');

function intList(option: string): (value: string) => number[] {
  return (value) =>
    value.split(',').map((s) => {
      const v = Number(s);
      if (s.trim() === '' || !Number.isInteger(v) || v < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} must be a comma-separated list of integers >= 1, got '${value}'`, { option });
      return v;
    });
}

/** `all` or one strategy name. */
export function parseStrategies(value: string): StrategyName[] {
  if (value === 'all') return [...STRATEGY_NAMES];
  const names = value.split(',');
  for (const n of names) {
    if (!(STRATEGY_NAMES as readonly string[]).includes(n)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--strategy must be all or one of ${STRATEGY_NAMES.join(', ')} (comma-separated), got '${n}'`, { option: 'strategy' });
  }
  return names as StrategyName[];
}

/** `0-4` or `0,1,2`. */
export function parseLabelSet(value: string): Set<number> {
  const out = new Set<number>();
  for (const part of value.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--public-labels must look like 0-4 or 0,2,5, got '${value}'`, { option: 'public-labels' });
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let l = from; l <= to; l++) out.add(l);
  }
  return out;
}

interface RawOptions {
  preset?: string;
  data?: string; label?: string; clients?: number; rounds?: number; strategy?: string; seed?: number; reproducibleSelection?: boolean; out?: string; json?: boolean;
  partition?: string; alpha?: number; clientsPerRound?: number; rank?: string; ranks?: number[]; loraAlpha?: number;
  epochs?: number; batchSize?: number; lr?: string; dpEpsilon?: number; dpClip?: number; delta?: number; userDpNoise?: number; userDpClip?: number; secureAggregation?: boolean; secureClip?: number; secureDpNoise?: number; aggregationNoise?: string;
  dropout?: number; testFraction?: number; publicFraction?: number; publicLabels?: string; hidden?: string; pretrainEpochs?: number; workers?: number;
  deadline?: number; backend?: string; quiet?: boolean;
  categories?: string; perCategory?: number; seqLen?: number; llamaHidden?: number; llamaLayers?: number; llamaHeads?: number; llamaKvHeads?: number;
  pretrainSteps?: number; pretrainBatchSize?: number; pretrainLr?: number; pretrainSeed?: number; cache?: string; targetModules?: string; baselines?: boolean;
}

/** The language task's defaults (`--data fortunes`), where they differ from the mlp sims'. */
export const FORTUNES_DEFAULTS = { partition: 'category', rounds: 8, epochs: 1, lr: '0.01', rank: '8', batchSize: 16 } as const;

function languageOptions(o: RawOptions): LanguageOptions {
  const categories = o.categories === undefined ? [...DEFAULT_FORTUNE_CATEGORIES] : o.categories.split(',').map((c) => c.trim()).filter((c) => c !== '');
  if (categories.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--categories must name at least one fortune category, got '${o.categories}'`, { option: 'categories' });
  const seqLen = o.seqLen ?? 128;
  if (seqLen < 8) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--seq-len must be >= 8, got ${seqLen}`, { option: 'seq-len' });
  const hidden = o.llamaHidden ?? 128;
  const heads = o.llamaHeads ?? 4;
  if (hidden % heads !== 0 || (hidden / heads) % 2 !== 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--llama-hidden ${hidden} must be a multiple of 2 x --llama-heads ${heads} (an even head dimension)`, { option: 'llama-hidden' });
  const known = readdirSync(FORTUNES_DIR).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4));
  const unknown = categories.find((c) => !known.includes(c));
  if (unknown !== undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--categories: no fortune category '${unknown}'; known: ${known.sort().join(', ')}`, { option: 'categories' });
  const targets = o.targetModules ?? 'all-linear';
  return {
    categories,
    perCategory: o.perCategory ?? 125,
    base: {
      hidden, layers: o.llamaLayers ?? 2, heads, kvHeads: o.llamaKvHeads ?? Math.max(1, heads / 2),
      steps: o.pretrainSteps ?? 1500, batchSize: o.pretrainBatchSize ?? 8, seqLen, lr: o.pretrainLr ?? 3e-3, seed: o.pretrainSeed ?? 0,
    },
    cacheDir: o.cache ?? 'out/cache',
    targetModules: targets === 'all-linear' ? 'all-linear' : targets.split(',').map((t) => t.trim()).filter((t) => t !== ''),
    baselines: o.baselines === true,
  };
}

/** The sim's secure aggregation settings from its flags; the noise needs a clip (default 1). */
function parseAggregationNoise(value: string): 'off' | 'sketch' {
  if (value === 'off' || value === 'sketch') return value;
  throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--aggregation-noise must be off or sketch, got '${value}'`, { option: 'aggregation-noise' });
}

function secureOptions(o: { secureAggregation?: boolean; secureClip?: number; secureDpNoise?: number }): { clipNorm?: number; noiseMultiplier?: number } | undefined {
  if (o.secureAggregation !== true) {
    if (o.secureClip !== undefined || o.secureDpNoise !== undefined) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${o.secureClip !== undefined ? 'secure-clip' : 'secure-dp-noise'} needs --secure-aggregation`, { option: 'secure-aggregation' });
    }
    return undefined;
  }
  const clipNorm = o.secureClip ?? (o.secureDpNoise !== undefined ? 1 : undefined);
  return { ...(clipNorm !== undefined && { clipNorm }), ...(o.secureDpNoise !== undefined && { noiseMultiplier: o.secureDpNoise }) };
}

/** Options after the preset's defaults and the command line (the command line wins). */
export function simOptions(raw: RawOptions, log: (line: string) => void): SimOptions {
  let preset: Partial<RawOptions> = {};
  if (raw.preset !== undefined) {
    if (!(raw.preset in PRESETS)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${raw.preset}'`, { option: 'preset' });
    preset = PRESETS[raw.preset as PresetName];
  }
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as RawOptions;
  const fortunes = (given.data ?? preset.data) === 'fortunes';
  const o = { ...(fortunes && FORTUNES_DEFAULTS), ...preset, ...given } as RawOptions;
  const secure = secureOptions(o);
  const hidden = (o.hidden ?? '64,64').split(',').map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--hidden must be comma-separated integers >= 1, got '${o.hidden}'`, { option: 'hidden' });
    return v;
  });
  const backend = o.backend ?? 'wasm';
  if (!['wasm', 'cpu', 'webgpu', 'tensorflow'].includes(backend)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--backend must be wasm, cpu, webgpu or tensorflow, got '${backend}'`, { option: 'backend' });
  const language = fortunes ? languageOptions(o) : undefined;
  if (language !== undefined && (o.partition ?? 'category') === 'category' && o.clients !== undefined && o.clients > language.categories.length) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--clients ${o.clients}: --partition category gives each client one fortune category, and --categories names ${language.categories.length}`, { option: 'clients' });
  }
  return {
    data: o.data ?? 'digits',
    ...(language !== undefined && { language }),
    ...(o.label !== undefined && { label: o.label }),
    clients: o.clients ?? language?.categories.length ?? 8,
    rounds: o.rounds ?? 10,
    strategies: parseStrategies(o.strategy ?? 'fedavg'),
    seed: o.seed ?? 0,
    ...(o.reproducibleSelection === true && { reproducibleSelection: true }),
    out: o.out ?? 'out/sim',
    partitioner: parsePartitioner(o.partition ?? 'dirichlet', o.alpha),
    ...(o.clientsPerRound !== undefined && { clientsPerRound: o.clientsPerRound }),
    rank: parsePerStrategy('rank', String(o.rank ?? 4), 4, { test: (v) => Number.isInteger(v) && v >= 1, rule: 'integers >= 1' }),
    ...(o.ranks !== undefined && { ranks: o.ranks }),
    ...(o.loraAlpha !== undefined && { alpha: o.loraAlpha }),
    epochs: o.epochs ?? 2,
    batchSize: o.batchSize ?? 16,
    lr: parsePerStrategy('lr', String(o.lr ?? 0.01), 0.01, { test: (v) => Number.isFinite(v) && v > 0 && v <= 10, rule: 'numbers in (0, 10]' }),
    ...(o.dpEpsilon !== undefined && { dpEpsilon: o.dpEpsilon }),
    dpClip: o.dpClip ?? 1,
    delta: o.delta ?? DEFAULT_DELTA,
    ...(o.userDpNoise !== undefined && { userDpNoise: o.userDpNoise }),
    userDpClip: o.userDpClip ?? 0.1,
    ...(secure !== undefined && { secureAggregation: secure }),
    aggregationNoise: parseAggregationNoise(o.aggregationNoise ?? 'sketch'),
    dropout: o.dropout ?? 0,
    testFraction: o.testFraction ?? 0.2,
    publicFraction: o.publicFraction ?? 0.2,
    ...(o.publicLabels !== undefined && { publicLabels: parseLabelSet(o.publicLabels) }),
    hiddenSizes: hidden,
    pretrainEpochs: o.pretrainEpochs ?? 20,
    workers: o.workers ?? 2,
    roundDeadlineSeconds: o.deadline ?? 120,
    backend: backend as SimOptions['backend'],
    log,
  };
}

/** A table of the strategies' results for the terminal. */
export function summaryTable(report: SimReport): string {
  const fmtBytes = (b: number): string => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`);
  const language = report.base.perplexity !== undefined;
  const score = (f: { accuracy?: number; perplexity?: number }): string =>
    language ? (f.perplexity === undefined ? '-' : f.perplexity.toFixed(3)) : f.accuracy === undefined ? '-' : `${(100 * f.accuracy).toFixed(1)}%`;
  const head = ['strategy', language ? 'perplexity' : 'accuracy', 'loss', 'up/client/round', 'down/client/round', 'epsilon', 'wall'];
  const rows = Object.entries(report.strategies).map(([n, s]) => [
    n,
    s.status === 'failed' && s.final.loss === undefined ? 'FAILED' : score(s.final),
    s.final.loss?.toFixed(3) ?? '-',
    fmtBytes(s.bytesUpPerClientRound),
    fmtBytes(s.bytesDownPerClientRound),
    s.epsilon === null ? '-' : s.epsilon.toFixed(2),
    `${s.wallSeconds.toFixed(1)} s`,
  ]);
  rows.unshift(['(base)', score(report.base), report.base.loss.toFixed(3), '', '', '', '']);
  const b = report.baselines;
  if (b !== undefined) {
    rows.push(['local-only, own category', b.localMeanOwnPerplexity.toFixed(3), '', '', '', '', '']);
    rows.push(['local-only, union', b.localMeanPerplexity.toFixed(3), '', '', '', '', '']);
    rows.push(['centralised', b.centralised.perplexity.toFixed(3), '', '', '', '', `${b.wallSeconds.toFixed(1)} s`]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const table = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  if (language) {
    // per category: the client holding it (category partition) and the union
    const cats = Object.keys(report.base.perplexityByCategory ?? {});
    const catRows: string[][] = [['(base)', ...cats.map((c) => report.base.perplexityByCategory![c]!.toFixed(2)), report.base.perplexity!.toFixed(2)]];
    for (const [n, s] of Object.entries(report.strategies)) catRows.push([n, ...cats.map((c) => s.final.perplexityByCategory?.[c]?.toFixed(2) ?? '-'), s.final.perplexity?.toFixed(2) ?? '-']);
    if (b !== undefined) {
      catRows.push(['local-only', ...cats.map((c) => b.local.find((l) => l.categories.length === 1 && l.categories[0] === c)?.byCategory[c]?.toFixed(2) ?? '-'), b.localMeanPerplexity.toFixed(2)]);
      catRows.push(['centralised', ...cats.map((c) => b.centralised.byCategory[c]!.toFixed(2)), b.centralised.perplexity.toFixed(2)]);
    }
    const cHead = ['test perplexity', ...cats, 'union'];
    const cw = cHead.map((h, i) => Math.max(h.length, ...catRows.map((r) => r[i]!.length)));
    const cLine = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(cw[i]!) : c.padStart(cw[i]!))).join('  ');
    table.push('', cLine(cHead), cw.map((w) => '-'.repeat(w)).join('  '), ...catRows.map(cLine));
  }
  const remarks = Object.entries(report.strategies).flatMap(([n, s]) => [
    ...(s.status === 'failed' ? [`${n}: FAILED: ${s.reason ?? 'no reason recorded'}`] : []),
    ...s.notes.map((note) => `${n}: ${note}`),
  ]);
  if (remarks.length > 0) table.push('', ...remarks);
  return table.join('\n');
}

export function register(program: Command): void {
  program
    .command('sim')
    .description('simulate a federation on this machine: a real coordinator and N client agents over loopback, on real data; writes report.json and report.html')
    .option('--preset <name>', `start from a preset (${Object.keys(PRESETS).join(', ')}); other options override it`)
    .option('--data <src>', 'digits (bundled), fortunes (the language task: a small llama across fortune categories), or a CSV file with a header, numeric features and a label column', undefined)
    .option('--label <column>', 'label column of a CSV (default: label, else the last column)')
    .option('--clients <n>', 'simulated clients (default 8)', int('clients', 1))
    .option('--rounds <n>', 'rounds per job (default 10)', int('rounds', 1))
    .option('--strategy <name>', `fedavg, flora, ffa, fedsb, a comma list, or all (default fedavg)`)
    .option('--seed <n>', 'seed of the split, partition, base model and jobs (default 0)', int('seed', 0))
    .option('--reproducible-selection', 'select each round\'s clients from --seed, so a run repeats; no secret subsample, so user-level DP books q = 1 (simulations only)')
    .option('--out <dir>', 'report folder (default out/sim)')
    .option('--json', 'print report.json to stdout at the end')
    .option('--partition <kind>', 'iid, category (one label per client), or dirichlet[:alpha] (default dirichlet)')
    .option('--alpha <x>', 'Dirichlet concentration (default 0.5)', positive('alpha'))
    .option('--clients-per-round <k>', 'clients aggregated per round (default all)', int('clients-per-round', 1))
    .option('--rank <r>', 'LoRA rank, optionally per strategy: 4 or 4,fedsb=16 (default 4)')
    .option('--ranks <list>', 'per-client ranks, e.g. 2,4,8 (flora; fedavg zero-pads; others use --rank)', intList('ranks'))
    .option('--lora-alpha <x>', 'LoRA alpha (default: the rank, s = 1)', positive('lora-alpha'))
    .option('--epochs <n>', 'local epochs per round (default 2)', positive('epochs'))
    .option('--batch-size <n>', 'local batch size (default 16)', int('batch-size', 1))
    .option('--lr <x>', 'local learning rate (AdamW), optionally per strategy: 0.01 or 0.01,ffa=0.05 (default 0.01)')
    .option('--dp-epsilon <eps>', 'client-side DP-SGD, sigma calibrated to this epsilon over the job', positive('dp-epsilon'))
    .option('--dp-clip <c>', 'DP-SGD per-example clip norm (default 1)', positive('dp-clip'))
    .option('--delta <d>', `delta of (epsilon, delta)-DP (default ${DEFAULT_DELTA.toExponential()})`, positive('delta'))
    .option('--user-dp-noise <z>', 'coordinator-side user-level DP-FedAvg noise multiplier (not flora)', positive('user-dp-noise'))
    .option('--user-dp-clip <c>', 'user-level clip norm (default 0.1)', positive('user-dp-clip'))
    .option('--secure-aggregation', 'secure aggregation (SecAgg+): the coordinator learns only each round\'s sum (fedavg, ffa, fedsb; flora runs without)')
    .option('--secure-clip <C>', 'with --secure-aggregation: clip each update delta to this L2 norm (default: no clip; 1 with --secure-dp-noise)', positive('secure-clip'))
    .option('--secure-dp-noise <z>', 'with --secure-aggregation: distributed DP, each client adds its share of N(0, (z C)^2)', positive('secure-dp-noise'))
    .option('--aggregation-noise <mode>', "fedavg's aggregation-noise figure in the report: sketch or off (default sketch; jobs default to off)")
    .option('--dropout <p>', 'probability that an offered client leaves the round (default 0)', fraction('dropout'))
    .option('--test-fraction <f>', 'rows held out for the test accuracy (default 0.2)', fraction('test-fraction'))
    .option('--public-fraction <f>', 'of the rest, rows held apart to pre-train the base model (default 0.2)', fraction('public-fraction'))
    .option('--public-labels <set>', 'pre-train only on public rows with these labels, e.g. 0-4 (default all)')
    .option('--hidden <sizes>', 'hidden widths of the base mlp (default 64,64)')
    .option('--pretrain-epochs <n>', 'base model epochs (default 20)', int('pretrain-epochs', 1))
    .option('--workers <n>', 'worker threads for the clients (default 2)', int('workers', 1))
    .option('--deadline <s>', 'round deadline, seconds (default 120)', positive('deadline'))
    .option('--backend <name>', 'tfjs backend of the clients (default wasm)')
    .option('--categories <list>', `fortunes: categories, one per client under --partition category (default ${DEFAULT_FORTUNE_CATEGORIES.join(',')})`)
    .option('--per-category <n>', 'fortunes: quotes kept per category before the test split (default 125)', int('per-category', 5))
    .option('--seq-len <n>', 'fortunes: tokens per example; quotes longer than seq-len - 1 bytes are left out (default 128)', int('seq-len', 8))
    .option('--llama-hidden <n>', 'fortunes: base llama hidden size (default 128)', int('llama-hidden', 2))
    .option('--llama-layers <n>', 'fortunes: base llama layers (default 2)', int('llama-layers', 1))
    .option('--llama-heads <n>', 'fortunes: query heads (default 4)', int('llama-heads', 1))
    .option('--llama-kv-heads <n>', 'fortunes: key/value heads (default heads / 2)', int('llama-kv-heads', 1))
    .option('--pretrain-steps <n>', 'fortunes: base llama pre-training steps on the WordNet glosses (default 1500)', int('pretrain-steps', 1))
    .option('--pretrain-batch-size <n>', 'fortunes: sequences per pre-training step (default 8)', int('pretrain-batch-size', 1))
    .option('--pretrain-lr <x>', 'fortunes: peak pre-training learning rate (default 0.003)', positive('pretrain-lr'))
    .option('--pretrain-seed <n>', 'fortunes: base llama seed, apart from --seed so seeds share one base (default 0)', int('pretrain-seed', 0))
    .option('--cache <dir>', 'fortunes: folder of pre-trained base models, reused when their SHA-256 verifies (default out/cache)')
    .option('--target-modules <names>', 'fortunes: LoRA target modules, e.g. q_proj,v_proj (default all-linear)')
    .option('--baselines', 'fortunes: also train local-only and centralised LoRA on the same budget')
    .option('--quiet', 'no progress lines')
    .action(async (raw: RawOptions) => {
      const log = raw.quiet === true ? () => undefined : (line: string) => process.stderr.write(`${line}\n`);
      const options = simOptions(raw, log);
      const { runSim } = await import('./run-sim.js');
      const { report, jsonPath, htmlPath } = await runSim(options);
      log('');
      log(summaryTable(report));
      log('');
      log(`report: ${htmlPath}`);
      log(`        ${jsonPath}`);
      if (raw.json === true) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      const failed = Object.entries(report.strategies).filter(([, s]) => s.status !== 'completed');
      if (failed.length > 0) {
        process.stderr.write(`fedlora sim: ${failed.map(([n, s]) => `${n} ${s.status}${s.reason === undefined ? '' : ` (${s.reason})`}`).join('; ')}\n`);
        process.exitCode = 1;
      }
      const { shutdownBackend } = await import('../client/backend.js');
      await shutdownBackend();
    });
}
