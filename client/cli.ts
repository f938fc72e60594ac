/**
 * The client's commands:
 *   fedlora backend                  which TensorFlow.js backend this machine uses, and its self-test
 *   fedlora pretrain mlp             pre-train the base mlp on a public part of a data set (digits 0-4 by default)
 *   fedlora pretrain llama           pre-train the small base llama on the WordNet glosses
 *   fedlora train                    fine-tune LoRA locally on a data file and write a PEFT adapter
 *   fedlora eval                     accuracy / perplexity of a base model with and without a PEFT adapter
 * TensorFlow.js and the models are imported inside the actions only.
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';
import { DEFAULT_DELTA } from '../shared/protocol/job-spec.js';

function number(name: string, test: (v: number) => boolean, rule: string): (value: string) => number {
  return (value: string) => {
    const v = Number(value);
    if (value.trim() === '' || !test(v)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${name} must be ${rule}, got '${value}'`);
    return v;
  };
}
const positiveInt = (name: string): ((v: string) => number) => number(name, (v) => Number.isInteger(v) && v > 0, 'a positive integer');
const nonNegativeInt = (name: string): ((v: string) => number) => number(name, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
const positive = (name: string): ((v: string) => number) => number(name, (v) => Number.isFinite(v) && v > 0, 'a positive number');
const fraction = (name: string): ((v: string) => number) => number(name, (v) => v >= 0 && v < 1, 'a number in [0, 1)');

/** Parses `0-4`, `5,7,9` or `0-2,8` into a set of labels. */
export function parseLabelSet(value: string): Set<number> {
  const out = new Set<number>();
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (m === null) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--labels must look like 0-4 or 5,7,9, got '${value}'`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--labels: range ${part} is empty`);
    for (let l = lo; l <= hi; l++) out.add(l);
  }
  return out;
}

/** A set of labels written compactly, runs as ranges: [0, 1, 2, 4] -> '0-2,4'. */
export function formatLabelSet(labels: Iterable<number>): string {
  const sorted = [...new Set(labels)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** `--header auto|yes|no` for CSV files. */
function parseHeader(value: string): boolean | 'auto' {
  if (value === 'auto') return 'auto';
  if (value === 'yes') return true;
  if (value === 'no') return false;
  throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--header must be auto, yes or no, got '${value}'`);
}

/** `--dp-clip 1` (one bound) or `--dp-clip A=0.5,B=0.5` (per LoRA factor, as DP-LoRA). */
export function parseDpClip(value: string): number | Partial<Record<'A' | 'B' | 'R', number>> {
  const rule = "a positive number, or per-factor bounds such as 'A=0.5,B=0.5'";
  if (!value.includes('=')) {
    const c = Number(value);
    if (value.trim() === '' || !(Number.isFinite(c) && c > 0)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `--dp-clip must be ${rule}, got '${value}'`);
    return c;
  }
  const out: Partial<Record<'A' | 'B' | 'R', number>> = {};
  for (const part of value.split(',')) {
    const m = /^\s*([ABR])\s*=\s*([^\s]+)\s*$/.exec(part);
    const c = m === null ? NaN : Number(m[2]);
    if (m === null || !(Number.isFinite(c) && c > 0)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `--dp-clip must be ${rule}, got '${value}'`);
    out[m[1] as 'A'] = c;
  }
  return out;
}

function parseHidden(value: string): number[] {
  if (value.trim() === '') return [];
  return value.split(',').map((s) => positiveInt('--hidden')(s));
}

async function useBackend(name: string | undefined): Promise<string> {
  const { backendVerbose, chooseBackend, parseBackendName } = await import('./backend.js');
  // One line for the backend chosen; the ones passed over with --verbose.
  const info = await chooseBackend({ ...(name === undefined ? {} : { backend: parseBackendName(name) }), log: (l) => process.stderr.write(`${l}\n`), logPassedOver: backendVerbose() });
  return `${info.name} (${info.device})`;
}

async function releaseBackend(): Promise<void> {
  const { shutdownBackend } = await import('./backend.js');
  await shutdownBackend();
}

function pct(x: number | undefined): string {
  return x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

export function register(program: Command): void {
  program
    .command('backend')
    .description('choose the TensorFlow.js backend as the client would (tensorflow, webgpu, wasm, cpu), run its self-test, print the result as JSON')
    .option('--backend <name>', 'force one backend: tensorflow, webgpu, wasm or cpu')
    .action(async (opts: { backend?: string }) => {
      const { chooseBackend, parseBackendName } = await import('./backend.js');
      try {
        const info = await chooseBackend(opts.backend === undefined ? {} : { backend: parseBackendName(opts.backend) });
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      } finally {
        await releaseBackend();
      }
    });

  const pretrain = program.command('pretrain').description('pre-train a base model, reproducibly from a seed');

  pretrain
    .command('mlp')
    .description('pre-train the base mlp on the labels given (default: digits 0-4) and save config.json + model.safetensors')
    .option('--data <file>', 'CSV or JSONL of numeric features and a label (default: the bundled digits)')
    .option('--label <column>', 'label column (name, 0-based index or "last")')
    .option('--header <when>', 'CSV: is the first line a header? auto (a line of numbers is data), yes or no', parseHeader, 'auto' as const)
    .option('--labels <set>', 'labels to pre-train on, e.g. 0-4 (the public part)', '0-4')
    .option('--num-labels <n>', 'classes of the head (default: largest label in the file + 1)', positiveInt('--num-labels'))
    .option('--test-fraction <f>', 'held out (seeded) for the reported accuracy', fraction('--test-fraction'), 0.2)
    .option('--hidden <sizes>', 'hidden layer widths, comma-separated', '64,64')
    .option('--act <name>', 'activation: relu, gelu or tanh', 'relu')
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'), 20)
    .option('--batch-size <n>', 'examples per step', positiveInt('--batch-size'), 32)
    .option('--lr <x>', 'peak learning rate (AdamW)', positive('--lr'), 3e-3)
    .option('--seed <n>', 'seed of the split, the initialisation and the batch order', nonNegativeInt('--seed'), 0)
    .option('--out <dir>', 'output folder', 'models/mlp-digits')
    .option('--backend <name>', 'force a backend')
    .action(async (opts: {
      data: string; label?: string; header: boolean | 'auto'; labels: string; numLabels?: number; testFraction: number; hidden: string; act: string;
      epochs: number; batchSize: number; lr: number; seed: number; out: string; backend?: string;
    }) => {
      if (!['relu', 'gelu', 'tanh'].includes(opts.act)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--act must be relu, gelu or tanh, got '${opts.act}'`);
      const keep = parseLabelSet(opts.labels);
      const hidden = parseHidden(opts.hidden);
      const backend = await useBackend(opts.backend);
      try {
        const [{ loadData }, { trainTestSplit }, { subset, indicesWithLabels }, { tableSource }, { pretrainMlp, saveDenseMlp }, { evaluate }] = await Promise.all([
          import('./data/load.js'), import('./data/split.js'), import('./data/table.js'), import('./data/batches.js'), import('./pretrain/mlp.js'), import('./train/evaluate.js'),
        ]);
        const { DIGITS_DATA } = await import('./data/bundled.js');
        const dataPath = opts.data ?? DIGITS_DATA;
        const data = await loadData(dataPath, { header: opts.header, ...(opts.label === undefined ? {} : { label: opts.label }) });
        if (data.kind !== 'classification') throw new FedloraError('FL_ERR_DATA', `${dataPath}: the mlp needs numeric features and a label, got texts`);
        const numLabels = opts.numLabels ?? data.labels.reduce((a, b) => Math.max(a, b), 0) + 1;
        const split = trainTestSplit(data.labels.length, opts.testFraction, opts.seed);
        const train = subset(data, split.train);
        const test = subset(data, split.test);
        const publicTrain = subset(train, indicesWithLabels(train.labels, keep));
        const publicTest = subset(test, indicesWithLabels(test.labels, keep));
        // the labels actually trained on: --labels filters the file's, it does not add any
        const present = [...new Set(publicTrain.labels)].sort((a, b) => a - b);
        if (present.length === 0) throw new FedloraError('FL_ERR_DATA', `${dataPath}: no training example has one of the labels ${opts.labels} (the file has ${formatLabelSet(data.labels)}); pass --labels`, { option: 'labels' });
        const { model, result } = await pretrainMlp(publicTrain, {
          hiddenSizes: hidden, numLabels, hiddenAct: opts.act as 'relu', epochs: opts.epochs, batchSize: opts.batchSize, lr: opts.lr, seed: opts.seed,
        });
        try {
          const sha256 = await saveDenseMlp(model, opts.out);
          const ev = publicTest.labels.length > 0 ? await evaluate(model, tableSource(publicTest)) : undefined;
          const summary = {
            out: opts.out, sha256, backend, labels: present, numLabels, trainExamples: publicTrain.labels.length, testExamples: publicTest.labels.length,
            steps: result.steps, seconds: Number(result.seconds.toFixed(2)), finalLoss: result.losses.at(-1), heldOut: ev,
          };
          process.stderr.write(`pre-trained mlp ${JSON.stringify(hidden)} on labels ${formatLabelSet(present)} (${numLabels} classes in the head): held-out accuracy ${pct(ev?.accuracy)} (${publicTest.labels.length} examples); saved to ${opts.out}, sha256 ${sha256}\n`);
          process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        } finally {
          model.dispose();
        }
      } finally {
        await releaseBackend();
      }
    });

  pretrain
    .command('llama')
    .description('pre-train the small base llama (byte tokenizer) on the WordNet glosses and save it in the Hugging Face layout')
    .requiredOption('--steps <n>', 'optimizer steps', positiveInt('--steps'))
    .option('--data <file>', 'one text per line, plain or gzipped (default: the WordNet glosses)')
    .option('--batch-size <n>', 'sequences per step', positiveInt('--batch-size'))
    .option('--seq-len <n>', 'tokens per sequence', positiveInt('--seq-len'))
    .option('--lr <x>', 'peak learning rate', positive('--lr'))
    .option('--hidden <n>', 'hidden size (default 256)', positiveInt('--hidden'))
    .option('--layers <n>', 'decoder layers (default 4)', positiveInt('--layers'))
    .option('--heads <n>', 'query heads (default 8)', positiveInt('--heads'))
    .option('--kv-heads <n>', 'key/value heads (default 4)', positiveInt('--kv-heads'))
    .option('--intermediate <n>', 'SwiGLU width (default 8/3 x hidden, rounded up to a multiple of 8)', positiveInt('--intermediate'))
    .option('--seed <n>', 'seed', nonNegativeInt('--seed'), 0)
    .option('--out <dir>', 'output folder', 'models/llama-wordnet')
    .option('--backend <name>', 'force a backend')
    .action(async (opts: {
      steps: number; data?: string; batchSize?: number; seqLen?: number; lr?: number; hidden?: number; layers?: number; heads?: number; kvHeads?: number; intermediate?: number;
      seed: number; out: string; backend?: string;
    }) => {
      await useBackend(opts.backend);
      try {
        const { pretrainLlama, llamaSizeOverrides } = await import('./pretrain/llama.js');
        const result = await pretrainLlama({
          out: opts.out, steps: opts.steps, seed: opts.seed,
          configOverrides: llamaSizeOverrides({
            ...(opts.hidden !== undefined && { hidden: opts.hidden }), ...(opts.layers !== undefined && { layers: opts.layers }),
            ...(opts.heads !== undefined && { heads: opts.heads }), ...(opts.kvHeads !== undefined && { kvHeads: opts.kvHeads }),
            ...(opts.intermediate !== undefined && { intermediate: opts.intermediate }),
          }),
          ...(opts.data === undefined ? {} : { data: opts.data }),
          ...(opts.batchSize === undefined ? {} : { batchSize: opts.batchSize }),
          ...(opts.seqLen === undefined ? {} : { seqLen: opts.seqLen }),
          ...(opts.lr === undefined ? {} : { lr: opts.lr }),
          onEval: (e) => process.stderr.write(`step ${e.step}: validation loss ${e.loss.toFixed(4)}, perplexity ${e.perplexity.toFixed(2)}\n`),
        });
        process.stdout.write(`${JSON.stringify({ out: opts.out, sha256: result.sha256, parameters: result.parameters, evals: result.evals, msPerStepMedian: result.msPerStepMedian, backend: result.backend }, null, 2)}\n`);
      } finally {
        await releaseBackend();
      }
    });

  program
    .command('train')
    .description('fine-tune LoRA locally on a data file (a dry run before joining a federation) and write a PEFT adapter directory')
    .requiredOption('--model <dir>', 'base model folder (config.json + model.safetensors)')
    .requiredOption('--data <file>', 'data file: .csv or .jsonl, optionally .gz')
    .option('--out <dir>', 'write the adapter here (adapter_config.json + adapter_model.safetensors)')
    .option('--label <column>', 'label column or field')
    .option('--header <when>', 'CSV: is the first line a header? auto (a line of numbers is data), yes or no', parseHeader, 'auto' as const)
    .option('--labels <set>', 'classification: train and evaluate only on these labels, e.g. 5-9')
    .option('--variant <v>', 'lora (A, B trained), ffa (B trained), fedsb (R trained)', 'lora')
    .option('--rank <r>', 'LoRA rank', positiveInt('--rank'), 8)
    .option('--alpha <a>', 'LoRA alpha (default 2 * rank)', positive('--alpha'))
    .option('--target-modules <names>', 'llama: comma-separated module names, or all-linear', 'q_proj,v_proj')
    .option('--seq-len <n>', 'llama: tokens per example', positiveInt('--seq-len'), 128)
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'), 3)
    .option('--max-steps <n>', 'stop after this many optimizer steps', positiveInt('--max-steps'))
    .option('--batch-size <n>', 'examples per micro-batch (DP: expected batch size)', positiveInt('--batch-size'), 32)
    .option('--grad-accum <n>', 'micro-batches per optimizer step', positiveInt('--grad-accum'), 1)
    .option('--lr <x>', 'peak learning rate (AdamW)', positive('--lr'), 5e-3)
    .option('--schedule <kind>', 'constant, cosine or linear', 'constant')
    .option('--warmup <steps>', 'linear warmup steps', nonNegativeInt('--warmup'), 0)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', number('--weight-decay', (v) => v >= 0, 'a number >= 0'), 0)
    .option('--test-fraction <f>', 'held out for evaluation', fraction('--test-fraction'), 0.2)
    .option('--seed <n>', 'seed of the split, the initialisation and the batch order', nonNegativeInt('--seed'), 0)
    .option('--dp-sigma <s>', 'DP-SGD noise multiplier (enables DP-SGD with --dp-clip)', number('--dp-sigma', (v) => v >= 0, 'a number >= 0'))
    .option('--dp-clip <c>', "DP-SGD per-example clipping norm, or per LoRA factor as 'A=0.5,B=0.5' (DP-LoRA)", parseDpClip)
    .option('--dp-mode <m>', 'ghost (per-example norms without per-example gradients) or microbatch', 'ghost')
    .option('--dp-delta <d>', 'delta for the epsilon reported after DP-SGD', number('--dp-delta', (v) => v > 0 && v < 1, 'in (0, 1)'), DEFAULT_DELTA)
    .option('--backend <name>', 'force a backend')
    .option('--threads <n>', 'threads that train data-parallel, each with its own backend and model copy; 1: this thread alone (default: the machine\'s cores)', positiveInt('--threads'))
    .action(async (opts: {
      model: string; data: string; out?: string; label?: string; header: boolean | 'auto'; labels?: string; variant: string; rank: number; alpha?: number; targetModules: string; seqLen: number;
      epochs: number; maxSteps?: number; batchSize: number; gradAccum: number; lr: number; schedule: string; warmup: number; weightDecay: number;
      testFraction: number; seed: number; dpSigma?: number; dpClip?: number | Partial<Record<'A' | 'B' | 'R', number>>; dpMode: string; dpDelta: number; backend?: string; threads?: number;
    }) => {
      if (!['lora', 'ffa', 'fedsb'].includes(opts.variant)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--variant must be lora, ffa or fedsb, got '${opts.variant}'`);
      if (!['constant', 'cosine', 'linear'].includes(opts.schedule)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--schedule must be constant, cosine or linear, got '${opts.schedule}'`);
      if (!['ghost', 'microbatch'].includes(opts.dpMode)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--dp-mode must be ghost or microbatch, got '${opts.dpMode}'`);
      if ((opts.dpSigma === undefined) !== (opts.dpClip === undefined)) {
        throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', 'DP-SGD needs both --dp-sigma and --dp-clip');
      }
      const backend = await useBackend(opts.backend);
      try {
        const [{ runLocalTraining }, { SingleBar, Presets }] = await Promise.all([import('./train/local-run.js'), import('cli-progress')]);
        const bar = new SingleBar({ format: 'train |{bar}| {value}/{total} steps | loss {loss} | {eps} examples/s', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
        let started = false;
        const targets = opts.targetModules === 'all-linear' ? 'all-linear' as const : opts.targetModules.split(',').map((s) => s.trim()).filter((s) => s !== '');
        const result = await runLocalTraining({
          modelDir: opts.model, dataPath: opts.data, header: opts.header, ...(opts.label === undefined ? {} : { label: opts.label }),
          ...(opts.labels === undefined ? {} : { labels: parseLabelSet(opts.labels) }),
          variant: opts.variant as 'lora', rank: opts.rank, ...(opts.alpha === undefined ? {} : { alpha: opts.alpha }),
          targetModules: targets, seqLen: opts.seqLen, epochs: opts.epochs, ...(opts.maxSteps === undefined ? {} : { maxSteps: opts.maxSteps }),
          batchSize: opts.batchSize, gradAccumulation: opts.gradAccum, lr: opts.lr, schedule: opts.schedule as 'constant', warmupSteps: opts.warmup,
          weightDecay: opts.weightDecay, testFraction: opts.testFraction, seed: opts.seed, ...(opts.out === undefined ? {} : { outDir: opts.out }),
          threads: opts.threads ?? (await import('node:os')).availableParallelism(),
          ...(opts.dpSigma === undefined ? {} : { dp: { noiseMultiplier: opts.dpSigma, clipNorm: opts.dpClip!, mode: opts.dpMode as 'ghost' } }),
          onProgress: (p) => {
            const payload = { loss: Number.isFinite(p.loss) ? p.loss.toFixed(4) : '-', eps: p.examplesPerSecond.toFixed(0) };
            if (!started) { bar.start(p.totalSteps, 0, payload); started = true; }
            bar.update(p.step, payload);
          },
        }).finally(() => { if (started) bar.stop(); });
        const ev = (e: typeof result.before): string => (e === undefined ? 'n/a' : e.accuracy !== undefined ? `accuracy ${pct(e.accuracy)}, loss ${e.loss.toFixed(4)}` : `perplexity ${e.perplexity!.toFixed(3)}`);
        process.stderr.write(`backend ${backend}; held-out (${result.testExamples} examples): before ${ev(result.before)}; after ${ev(result.after)}\n`);
        let privacy: { epsilon: number; delta: number; order: number } | undefined;
        if (result.train.dp !== undefined) {
          const d = result.train.dp;
          const { epsilonOfSampledGaussian } = await import('../privacy/accountant.js');
          const e = d.noiseMultiplier > 0 ? epsilonOfSampledGaussian(d.q, d.noiseMultiplier, d.steps, opts.dpDelta) : { epsilon: Infinity, order: 0 };
          privacy = { epsilon: e.epsilon, delta: opts.dpDelta, order: e.order };
          process.stderr.write(`DP-SGD: ${d.steps} steps at sampling rate q = ${d.q.toFixed(5)}, noise multiplier ${d.noiseMultiplier}, clip ${JSON.stringify(d.clipNorm)}, sensitivity ${d.sensitivity.toFixed(4)}: (epsilon ${e.epsilon.toFixed(3)}, delta ${opts.dpDelta}) by the RDP accountant\n`);
        }
        process.stdout.write(`${JSON.stringify({ ...result, train: { ...result.train, losses: undefined, finalLoss: result.train.losses.at(-1) }, ...(privacy === undefined ? {} : { privacy }) }, null, 2)}\n`);
      } finally {
        await releaseBackend();
      }
    });
  program
    .command('eval')
    .description('evaluate a base model and the base model with a PEFT adapter on a data file: accuracy (mlp) or perplexity (llama)')
    .requiredOption('--model <dir>', 'base model folder (config.json + model.safetensors)')
    .requiredOption('--adapter <dir>', 'PEFT adapter folder (adapter_config.json + adapter_model.safetensors), e.g. from fedlora export')
    .requiredOption('--data <file>', 'data file: .csv or .jsonl, optionally .gz (docs/data.md)')
    .option('--label <column>', 'label column or field')
    .option('--header <when>', 'CSV: is the first line a header? auto (a line of numbers is data), yes or no', parseHeader, 'auto' as const)
    .option('--labels <set>', 'classification: evaluate only on these labels, e.g. 5-9')
    .option('--seq-len <n>', 'llama: tokens per evaluated sequence', positiveInt('--seq-len'), 128)
    .option('--backend <name>', 'force a backend')
    .action(async (opts: { model: string; adapter: string; data: string; label?: string; header: boolean | 'auto'; labels?: string; seqLen: number; backend?: string }) => {
      const backend = await useBackend(opts.backend);
      try {
        const { evaluateAdapter } = await import('./eval.js');
        const result = await evaluateAdapter({
          modelDir: opts.model, adapterDir: opts.adapter, dataPath: opts.data, header: opts.header, seqLen: opts.seqLen,
          ...(opts.label === undefined ? {} : { label: opts.label }), ...(opts.labels === undefined ? {} : { labels: parseLabelSet(opts.labels) }),
        });
        const ev = (e: typeof result.base): string => (e.accuracy !== undefined ? `accuracy ${pct(e.accuracy)}, loss ${e.loss.toFixed(4)}` : `perplexity ${e.perplexity!.toFixed(3)} (${e.tokens} tokens)`);
        process.stderr.write(`backend ${backend}; ${result.base.examples} examples: base ${ev(result.base)}; base + adapter ${ev(result.adapted)}\n`);
        process.stdout.write(`${JSON.stringify({ ...result, backend }, null, 2)}\n`);
      } finally {
        await releaseBackend();
      }
    });
}
