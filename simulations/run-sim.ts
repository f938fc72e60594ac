/**
 * `fedlora sim`: a whole federation on this machine, with real parts only. The driver
 *  1. loads the data and splits it (test / public / federated, dataset.ts), partitions the
 *     federated rows among N clients (partition.ts), pre-trains the base mlp on the public rows;
 *  2. starts a real coordinator (coordinator/coordinator.ts) on loopback with its own SQLite file
 *     in the output folder;
 *  3. for each strategy, in turn, on the same partition, seeds and budget: creates the job and
 *     one enrolment token per client through the HTTP API, starts the clients in worker threads
 *     (client-pool.ts), follows the job over the HTTP API until it ends, and after each
 *     committed round evaluates the global adapter on the base model on the test split;
 *  4. writes report.json (report.ts) and report.html (report-html.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FedloraError, isFedloraError } from '../shared/errors.js';
import type { Adapter } from '../shared/adapter.js';
import { STRATEGY_TRAITS, type JobSpecInput, type StrategyName } from '../shared/protocol/job-spec.js';
import { JobViewSchema, type JobView } from '../shared/protocol/http.js';
import type { BackendName } from '../client/backend.js';
import type { BaseModel } from '../client/agent/base-model.js';
import type { ExampleSource } from '../client/data/batches.js';
import { classCounts, describePartitioner, partitionRows, type Partitioner } from './partition.js';
import { SimReportSchema, type RoundReport, type SimReport, type StrategyReport } from './report.js';
import type { WorkerClient } from './worker-protocol.js';
import { describePerStrategy, forStrategy, type PerStrategy } from './per-strategy.js';
import type { ClientPool as ClientPoolType } from './client-pool.js';
import type { LanguageBaselines, LanguageOptions, LanguageSetup } from './language-task.js';

export interface SimOptions {
  /** `digits`, `fortunes` (the language task: `language` options) or a CSV/JSONL file of numeric features and a label. */
  readonly data: string;
  /** The language task's options (`data: 'fortunes'`). */
  readonly language?: LanguageOptions;
  readonly label?: string;
  readonly clients: number;
  readonly rounds: number;
  readonly strategies: readonly StrategyName[];
  readonly seed: number;
  readonly out: string;
  readonly partitioner: Partitioner;
  /** k. @default every client */
  readonly clientsPerRound?: number;
  /** LoRA rank, per strategy (per-strategy.ts). */
  readonly rank: PerStrategy;
  /** Per-client ranks (flora; fedavg zero-pads); other strategies train at `rank`. */
  readonly ranks?: readonly number[];
  readonly alpha?: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** Local learning rate, per strategy. */
  readonly lr: PerStrategy;
  /** Client-side DP-SGD calibrated to this epsilon over the job. */
  readonly dpEpsilon?: number;
  readonly dpClip: number;
  readonly delta: number;
  /** Coordinator-side user-level DP-FedAvg noise multiplier z (not for flora). */
  readonly userDpNoise?: number;
  readonly userDpClip: number;
  /** Secure aggregation (SecAgg+) for the sum strategies; flora runs without. */
  readonly secureAggregation?: { readonly clipNorm?: number; readonly noiseMultiplier?: number };
  /** fedavg's aggregation-noise figure in the report (a sim's adapters are small, so it is cheap). @default 'sketch' */
  readonly aggregationNoise?: 'off' | 'sketch';
  readonly dropout: number;
  readonly testFraction: number;
  readonly publicFraction: number;
  readonly publicLabels?: ReadonlySet<number>;
  readonly hiddenSizes: readonly number[];
  readonly pretrainEpochs: number;
  /** Worker threads for the clients. @default 2 */
  readonly workers: number;
  readonly roundDeadlineSeconds: number;
  /** Select clients from the seed (repeatable runs) instead of the secret draw; user-level DP then books q = 1. @default false */
  readonly reproducibleSelection?: boolean;
  readonly backend: BackendName;
  /** A line of progress (the terminal). */
  readonly log: (line: string) => void;
}

const ADMIN_TOKEN = randomBytes(24).toString('base64url');

interface Http {
  call(method: string, path: string, body?: unknown): Promise<unknown>;
}

function http(url: string): Http {
  return {
    async call(method, path, body) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      const json = text === '' ? undefined : (JSON.parse(text) as unknown);
      if (res.status >= 300) {
        const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
        throw new FedloraError('FL_ERR_INVALID_CONFIG', `${method} ${path}: ${res.status} ${err?.code ?? ''} ${err?.message ?? text}`);
      }
      return json;
    },
  };
}

/**
 * Per-client float32 payload bytes by the per-matrix costs of docs/strategies.md.
 * @param rank the clients' rank; under heterogeneous ranks, their mean (up is then the mean upload, and FLoRA's down stacks c clients of that mean rank)
 */
export function analyticBytes(strategy: StrategyName, modules: ReadonlyArray<{ outFeatures: number; inFeatures: number }>, rank: number, clientsPerRound: number): { up: number; down: number; formula: string } {
  let up = 0;
  let down = 0;
  for (const { outFeatures: m, inFeatures: n } of modules) {
    if (strategy === 'fedavg') {
      up += (m + n) * rank;
      down += (m + n) * rank;
    } else if (strategy === 'flora') {
      up += (m + n) * rank;
      down += Math.min(clientsPerRound * (m + n) * rank, m * n);
    } else if (strategy === 'ffa') {
      up += m * rank;
      down += m * rank;
    } else {
      up += rank * rank;
      down += rank * rank;
    }
  }
  const formula = { fedavg: '(m+n) r up and down', flora: '(m+n) r up; min(c (m+n) r, m n) down', ffa: 'm r up and down', fedsb: 'r^2 up and down' }[strategy];
  return { up: up * 4, down: down * 4, formula };
}

/** Evaluates a global adapter on the base model (test split); modules may have their own ranks (capped at min(m, n)). */
async function evaluateAdapter(base: BaseModel, adapter: Adapter, test: ExampleSource): Promise<Scores> {
  const first = adapter.layout.modules[0]!;
  const others = adapter.layout.modules.filter((m) => m.rank !== first.rank || m.alpha !== first.alpha);
  const model = await base.build({
    variant: adapter.layout.variant,
    rank: first.rank,
    alpha: first.alpha,
    modules: adapter.layout.modules.map((m) => m.path),
    seed: 1,
    ...(others.length > 0 && { moduleRanks: Object.fromEntries(others.map((m) => [m.path, { rank: m.rank, alpha: m.alpha }])) }),
  });
  try {
    model.loadGlobal(adapter);
    const { evaluate } = await import('../client/train/evaluate.js');
    const ev = await evaluate(model, test);
    return { accuracy: ev.accuracy ?? Number.NaN, loss: ev.loss };
  } finally {
    model.dispose();
  }
}

/** A global adapter's scores on the test split: accuracy (mlp) or perplexity (language task). */
interface Scores {
  readonly accuracy: number | null;
  readonly loss: number;
  readonly perplexity?: number;
  readonly perplexityByCategory?: Record<string, number>;
}

/** What differs between the mlp sims and the language task; the rest of the sim is the same. */
interface SimTask {
  readonly modelDir: string;
  readonly baseModel: BaseModel;
  /** Module paths the jobs adapt. */
  readonly modules: readonly string[];
  /** Rows of the federated pool per client. */
  readonly partition: Int32Array[];
  /** Class (or category) of each federated row. */
  readonly labels: Int32Array;
  readonly featureNames: readonly string[];
  readonly data: { source: string; numLabels: number; testRows: number; publicRows: number; federatedRows: number };
  readonly base: SimReport['base'];
  /** A client's data for the worker. */
  clientData(rows: Int32Array): Pick<WorkerClient, 'features' | 'labels' | 'sequences'>;
  evaluate(adapter: Adapter): Promise<Scores>;
  readonly language: LanguageSetup | null;
}

async function mlpTask(o: SimOptions, out: string): Promise<SimTask> {
  const { loadSimTable, splitSimData, pretrainBase } = await import('./dataset.js');
  const table = await loadSimTable(o.data, o.label);
  const data = await splitSimData(table, { testFraction: o.testFraction, publicFraction: o.publicFraction, seed: o.seed, ...(o.publicLabels !== undefined && { publicLabels: o.publicLabels }) });
  const partition = partitionRows(data.federated.labels, o.clients, o.partitioner, o.seed, 2);
  const modelDir = join(out, 'base-model');
  const base = await pretrainBase(data, modelDir, { hiddenSizes: o.hiddenSizes, epochs: o.pretrainEpochs, seed: o.seed });
  o.log(`data ${data.source}: ${data.test.labels.length} test, ${data.public.labels.length} public, ${data.federated.labels.length} federated rows over ${o.clients} clients (${describePartitioner(o.partitioner)})`);
  o.log(`base mlp [${o.hiddenSizes.join(', ')}] pre-trained on the public rows: test accuracy ${pct(base.accuracy)}, loss ${base.loss.toFixed(3)}`);
  const { loadBaseModel } = await import('../client/agent/base-model.js');
  const { tableSource } = await import('../client/data/batches.js');
  const baseModel = await loadBaseModel(modelDir);
  const testSource = tableSource(data.test);
  const d = data.federated.featureNames.length;
  return {
    modelDir,
    baseModel,
    modules: baseModel.adaptable.map((m) => m.path),
    partition,
    labels: data.federated.labels,
    featureNames: data.federated.featureNames,
    data: { source: data.source, numLabels: data.numLabels, testRows: data.test.labels.length, publicRows: data.public.labels.length, federatedRows: data.federated.labels.length },
    base: { sha256: base.sha256, accuracy: base.accuracy, loss: base.loss, pretrainSeconds: base.seconds },
    clientData(rows) {
      const features = new Float32Array(rows.length * d);
      rows.forEach((r, j) => features.set(data.federated.features.subarray(r * d, (r + 1) * d), j * d));
      return { features, labels: Int32Array.from(rows, (r) => data.federated.labels[r]!) };
    },
    evaluate: (adapter) => evaluateAdapter(baseModel, adapter, testSource),
    language: null,
  };
}

async function languageTask(o: SimOptions, out: string): Promise<SimTask> {
  if (o.language === undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', '--data fortunes needs the language options', { option: 'data' });
  const { setupLanguageTask, evaluateLanguage } = await import('./language-task.js');
  const { selectSequences } = await import('./token-sequences.js');
  const setup = await setupLanguageTask(o.language, { testFraction: o.testFraction, seed: o.seed }, o.log);
  const { fortunes } = setup;
  const numLabels = fortunes.categories.length;
  if (o.partitioner.kind === 'category' && o.clients > numLabels) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--clients ${o.clients}: --partition category gives one fortune category per client, and --categories names ${numLabels}`, { option: 'clients' });
  }
  const partition = partitionRows(fortunes.train.labels, o.clients, o.partitioner, o.seed, 2);
  const before = await evaluateLanguage(setup, null);
  const b = o.language.base;
  o.log(`data fortunes: ${fortunes.categories.join(', ')}; ${fortunes.test.texts.length} test, ${fortunes.train.texts.length} federated quotes (at most ${b.seqLen - 1} bytes) over ${o.clients} clients (${describePartitioner(o.partitioner)})`);
  o.log(`base llama (hidden ${b.hidden}, ${b.layers} layers, ${setup.base.parameters} parameters, ${setup.base.cached ? 'cached' : `pre-trained in ${setup.base.seconds.toFixed(0)} s`}; gloss perplexity ${setup.base.glossPerplexity.toFixed(2)}): fortunes test perplexity ${before.perplexity.toFixed(3)}`);
  // its own folder under out/ names the base the report used, whatever happens to the cache later
  writeFileSync(join(out, 'base-model.json'), `${JSON.stringify({ dir: setup.base.dir, sha256: setup.base.sha256, recipe: b }, null, 2)}\n`);
  return {
    modelDir: setup.base.dir,
    baseModel: setup.model,
    modules: setup.modules,
    partition,
    labels: fortunes.train.labels,
    featureNames: [],
    data: { source: 'fortunes', numLabels, testRows: fortunes.test.texts.length, publicRows: 0, federatedRows: fortunes.train.texts.length },
    base: { sha256: setup.base.sha256, loss: before.loss, perplexity: before.perplexity, perplexityByCategory: before.byCategory, pretrainSeconds: setup.base.seconds },
    clientData: (rows) => ({ features: new Float32Array(0), labels: Int32Array.from(rows, (r) => fortunes.train.labels[r]!), sequences: selectSequences(setup.train, rows) }),
    async evaluate(adapter) {
      const r = await evaluateLanguage(setup, adapter);
      return { accuracy: null, loss: r.loss, perplexity: r.perplexity, perplexityByCategory: r.byCategory };
    },
    language: setup,
  };
}

/** The last round's scores, or the base model's when no round was evaluated. */
/** The report of a strategy that could not run to the end: failed, with its reason and no metrics. */
function failedStrategyReport(jobId: string, reason: string, wallSeconds: number): StrategyReport {
  return {
    jobId,
    status: 'failed',
    reason,
    final: {},
    rounds: [],
    bytesUpPerClientRound: 0,
    bytesDownPerClientRound: 0,
    analytic: { bytesUpPerClientRound: 0, bytesDownPerClientRound: 0, formula: '' },
    epsilon: null,
    epsilonClient: null,
    epsilonUser: null,
    delta: null,
    wallSeconds,
    ranks: [],
    clientsEnrolled: 0,
    droppedClientRounds: 0,
    refusedUpdates: 0,
    notes: [],
  };
}

function finalMetrics(last: RoundReport | undefined, base: SimReport['base'], completed: boolean): StrategyReport['final'] {
  if (last === undefined || last.loss === null) {
    if (!completed) return {}; // a failed strategy shows as failed, never with the base model's numbers
    return { ...(base.accuracy !== undefined && { accuracy: base.accuracy }), ...(base.perplexity !== undefined && { perplexity: base.perplexity, perplexityByCategory: base.perplexityByCategory }), loss: base.loss };
  }
  return {
    ...(last.accuracy !== null && { accuracy: last.accuracy }),
    ...(last.perplexity != null && { perplexity: last.perplexity }),
    ...(last.perplexityByCategory != null && { perplexityByCategory: last.perplexityByCategory }),
    loss: last.loss,
  };
}

const fmtBytes = (b: number): string => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${Math.round(b)} B`);
const pct = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : `${(100 * x).toFixed(1)}%`);

/**
 * Runs the simulation and writes the report folder.
 * @returns the report (also written to `<out>/report.json`) and the paths written
 */
export async function runSim(o: SimOptions): Promise<{ report: SimReport; jsonPath: string; htmlPath: string }> {
  const t0 = performance.now();
  validate(o);
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const { chooseBackend } = await import('../client/backend.js');
  await chooseBackend({ backend: o.backend });
  const task = o.data === 'fortunes' ? await languageTask(o, out) : await mlpTask(o, out);
  const { modelDir, partition, baseModel } = task;

  const { Coordinator } = await import('../coordinator/coordinator.js');
  const { decodeGlobalState } = await import('../coordinator/state-codec.js');
  const { rankCaps } = await import('../coordinator/jobs.js');
  const { epsilonOfSampledGaussian } = await import('../privacy/accountant.js');
  const dbDir = join(out, 'coordinator');
  rmSync(dbDir, { recursive: true, force: true });
  mkdirSync(dbDir, { recursive: true });
  const coordinator = await Coordinator.start({
    db: join(dbDir, 'fedlora.db'),
    port: 0,
    host: '127.0.0.1',
    adminToken: ADMIN_TOKEN,
    logLevel: 'silent',
    http: { rateLimit: 1_000_000 },
    engine: { startGraceMs: 2000, openWorkers: 0, seededSelection: o.reproducibleSelection === true },
  });
  const api = http(coordinator.url);
  const k = o.clientsPerRound ?? o.clients;
  const strategies: Record<string, StrategyReport> = {};
  let peakRss = process.memoryUsage.rss();
  const stateRoot = mkdtempSync(join(out, 'client-state-'));
  const { ClientPool } = await import('./client-pool.js');
  let pool: ClientPoolType | null = null;
  let baselines: LanguageBaselines | null = null;
  try {
    pool = await ClientPool.start({ modelDir, backend: o.backend }, Math.min(o.workers, o.clients));
    for (const strategy of o.strategies) {
      const started = performance.now();
      // one strategy's failure (a job refused, an evaluation that throws) is that strategy's
      // result, reported as failed with its message; the others still run and are reported
      try {
      const rank = forStrategy(o.rank, strategy);
      const lr = forStrategy(o.lr, strategy);
      const traits = STRATEGY_TRAITS[strategy];
      const heterogeneous = o.ranks !== undefined && traits.heterogeneousRanks !== 'none';
      const userDp = o.userDpNoise !== undefined && traits.aggregateIsSum;
      const secure = o.secureAggregation !== undefined && traits.aggregateIsSum ? o.secureAggregation : undefined;
      const spec: JobSpecInput = {
        strategy,
        rounds: o.rounds,
        clientsPerRound: k,
        minClients: o.dropout > 0 ? Math.max(1, Math.floor(k / 2)) : k,
        overSelection: o.dropout > 0 ? Math.min(1, o.dropout) : 0,
        roundDeadlineSeconds: o.roundDeadlineSeconds,
        // without simulated dropout a round below its minimum means a client failed: end the job at the deadline instead of retrying
        belowMinimum: o.dropout > 0 ? { policy: 'retry', retries: 3 } : { policy: 'fail', retries: 0 },
        model: { sha256: baseModel.sha256, targetModules: [...task.modules], kind: baseModel.kind },
        // fedavg trains no client above the job's rank (it refuses them): the global rank is the largest, smaller ones zero-pad
        rank: heterogeneous && traits.heterogeneousRanks === 'zero-padded' ? Math.max(rank, ...o.ranks!) : rank,
        ...(heterogeneous && { ranks: [...o.ranks!] }),
        ...(o.alpha !== undefined && { alpha: o.alpha }),
        training: { epochs: o.epochs, batchSize: o.batchSize, lr },
        privacy: {
          ...(o.dpEpsilon !== undefined && { client: { targetEpsilon: o.dpEpsilon, clip: o.dpClip } }),
          ...(userDp && { user: { noiseMultiplier: o.userDpNoise!, clip: o.userDpClip } }),
          ...((o.dpEpsilon !== undefined || userDp || secure?.noiseMultiplier !== undefined) && { budget: { epsilon: 1e6, delta: o.delta } }),
        },
        ...(secure !== undefined && {
          secureAggregation: {
            enabled: true,
            ...(secure.clipNorm !== undefined && { clipNorm: secure.clipNorm }),
            ...(secure.noiseMultiplier !== undefined && { dp: { noiseMultiplier: secure.noiseMultiplier } }),
          },
        }),
        seed: o.seed,
        // Repeatable from --seed: aggregate in enrolment order (a sim's adapters are small).
        deterministicAggregation: true,
        ...(!traits.exactProduct && { aggregationNoise: o.aggregationNoise ?? 'sketch' }),
      };
      if (o.userDpNoise !== undefined && !userDp) o.log(`[${strategy}] user-level DP does not apply to flora (its aggregate is not a sum): running it without`);
      if (o.secureAggregation !== undefined && secure === undefined) o.log(`[${strategy}] secure aggregation cannot protect flora (its aggregate is not a sum): running it without`);
      const { id: jobId } = (await api.call('POST', '/api/jobs', spec)) as { id: string };
      const clients: WorkerClient[] = [];
      for (let i = 0; i < o.clients; i++) {
        const { token } = (await api.call('POST', `/api/jobs/${jobId}/enrolments`, {})) as { token: string };
        const stateDir = join(stateRoot, `${strategy}-${i}`);
        clients.push({ index: i, token, stateDir, ...task.clientData(partition[i]!) });
      }
      o.log(`[${strategy}] job ${jobId}: ${o.rounds} rounds, ${k} of ${o.clients} clients per round, rank ${heterogeneous ? o.ranks!.join('/') : rank}, lr ${lr}`);
      // what the coordinator changes from what was asked (it logs the same lines)
      const capNotes = rankCaps(heterogeneous ? Math.max(rank, ...o.ranks!) : rank, baseModel.adaptable.filter((m) => task.modules.includes(m.path))).map((c) => c.message);
      for (const note of capNotes) o.log(`[${strategy}] ${note}`);

      // Follow the job: after each committed round, evaluate the new global state.
      const rounds: RoundReport[] = [];
      let seenState = -1;
      // bytes down per client = the state bytes of the offers the coordinator sent (each client's
      // own: FLoRA offers only the rounds a client lacks), per offer, since the previous commit
      const offerCounters = async (): Promise<{ bytes: number; offers: number }> => ({
        bytes: (await coordinator.metrics.offerBytes.get()).values[0]?.value ?? 0,
        offers: (await coordinator.metrics.offers.get()).values[0]?.value ?? 0,
      });
      const jobStart = await offerCounters();
      let counted = jobStart;
      let offeredBytes = 0;
      let lastCommit = performance.now();
      let view: JobView | null = null;
      let stop = false;
      const ranksSeen = new Set<number>();
      const follow = (async () => {
        while (!stop) {
          const stored = coordinator.store.latestState(jobId);
          if (stored !== null && stored.round !== seenState) {
            if (stored.round > 0 && o.dropout > 0) pool.roundCommitted(jobId, stored.round - 1);
            const state = decodeGlobalState(stored);
            const adapter = state.adapter;
            // the offers sent since the previous commit seen (this round's, and the next one's when
            // it started before this poll): their mean state bytes
            const sent = await offerCounters();
            if (sent.offers > counted.offers) offeredBytes = (sent.bytes - counted.bytes) / (sent.offers - counted.offers);
            counted = sent;
            if (stored.round > 0) {
              view = JobViewSchema.parse(await api.call('GET', `/api/jobs/${jobId}`));
              for (let r = rounds.length; r < stored.round; r++) {
                const rv = view.roundsDetail.find((x) => x.round === r);
                const ev = r === stored.round - 1 && adapter !== null ? await task.evaluate(adapter) : null;
                const ups = coordinator.store.updates(jobId, r).filter((u) => u.status === 'accepted');
                const row: RoundReport = {
                  round: r,
                  participants: rv?.participants.length ?? ups.length,
                  accuracy: ev?.accuracy ?? null,
                  loss: ev?.loss ?? null,
                  ...(task.language !== null && { perplexity: ev?.perplexity ?? null, perplexityByCategory: ev?.perplexityByCategory ?? null }),
                  trainLoss: rv?.metrics.train_loss ?? null,
                  aggregationNoise: rv?.metrics.aggregation_noise ?? null,
                  epsilon: rv?.metrics.epsilon ?? null,
                  bytesUpPerClient: ups.length === 0 ? 0 : ups.reduce((a, u) => a + u.bytes, 0) / ups.length,
                  bytesDownPerClient: offeredBytes,
                  seconds: rv === undefined ? 0 : (rv.committedAt - rv.startedAt) / 1000,
                };
                rounds.push(row);
                const now = performance.now();
                o.log(
                  `[${strategy}] round ${r + 1}/${o.rounds}  clients ${row.participants}  train loss ${row.trainLoss?.toFixed(3) ?? '-'}  ${task.language === null ? `test acc ${pct(row.accuracy)}` : `test ppl ${row.perplexity?.toFixed(3) ?? '-'}`}` +
                    `${row.epsilon === null ? '' : `  eps ${row.epsilon.toFixed(2)}`}  up ${fmtBytes(row.bytesUpPerClient)}  down ${fmtBytes(row.bytesDownPerClient)}  ${((now - lastCommit) / 1000).toFixed(1)} s`,
                );
                lastCommit = now;
              }
            }
            seenState = stored.round;
          }
          peakRss = Math.max(peakRss, process.memoryUsage.rss());
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      follow.catch(() => undefined); // its error is awaited (and reported) once the job is over
      let result;
      let notes = 0;
      try {
        result = await pool.runJob({ url: coordinator.url, jobId, featureNames: task.featureNames, dropout: o.dropout, rejoinMs: 3000, seed: o.seed, ...(task.language !== null && { tokens: task.language.tokens }) }, clients, (client, line) => {
          if (notes++ < 5) o.log(`[${strategy}] client ${client}: ${line}${notes === 5 ? ' (further client messages not shown)' : ''}`);
        });
      } finally {
        // let the follower catch the last commit, then stop it
        const end = Date.now() + 5000;
        while (rounds.length < (coordinator.store.requireJob(jobId).round) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        stop = true;
        await follow;
      }
      view = JobViewSchema.parse(await api.call('GET', `/api/jobs/${jobId}`));
      const jobEnd = await offerCounters();
      const offersSent = { bytes: jobEnd.bytes - jobStart.bytes, offers: jobEnd.offers - jobStart.offers };
      // ranks: from the plans the coordinator stored is not exposed; the spec says which
      for (let i = 0; i < o.clients; i++) ranksSeen.add(heterogeneous ? o.ranks![i % o.ranks!.length]! : rank);
      const epsClients = [...result.summaries.values()].map((s) => s.clientEpsilon).filter((e) => e !== undefined);
      const worst = epsClients.reduce<(typeof epsClients)[number] | undefined>((a, b) => (a === undefined || b.epsilon > a.epsilon ? b : a), undefined);
      if (worst !== undefined) {
        // per-round client epsilon of the most-spent client, assuming its steps were spread evenly over the rounds it trained
        const perRound = worst.steps / Math.max(1, rounds.length);
        rounds.forEach((row, i) => {
          if (row.epsilon === null) row.epsilon = epsilonOfSampledGaussian(worst.samplingRate, worst.noiseMultiplier, Math.round(perRound * (i + 1)), worst.delta).epsilon;
        });
      }
      const last = rounds.at(-1);
      const accepted = rounds.filter((r) => r.participants > 0);
      const analytic = analyticBytes(strategy, baseModel.adaptable.filter((m) => task.modules.includes(m.path)), heterogeneous ? Array.from({ length: o.clients }, (_, i) => o.ranks![i % o.ranks!.length]!).reduce((a, b) => a + b, 0) / o.clients : rank, k);
      const refused = coordinator.store.updates(jobId).filter((u) => u.status === 'refused').length;
      strategies[strategy] = {
        jobId,
        status: view.status === 'completed' ? 'completed' : 'failed',
        ...(view.reason !== undefined && { reason: view.reason }),
        final: finalMetrics(last, task.base, view.status === 'completed'),
        rounds,
        bytesUpPerClientRound: accepted.length === 0 ? 0 : accepted.reduce((a, r) => a + r.bytesUpPerClient, 0) / accepted.length,
        // every offer of the job, each client's own (FLoRA's differ by what each one lacks)
        bytesDownPerClientRound: offersSent.offers === 0 ? 0 : offersSent.bytes / offersSent.offers,
        analytic: { bytesUpPerClientRound: analytic.up, bytesDownPerClientRound: analytic.down, formula: analytic.formula },
        epsilon: worst?.epsilon ?? view.privacy.epsilon ?? null,
        epsilonClient: worst?.epsilon ?? null,
        epsilonUser: view.privacy.epsilon,
        delta: worst?.delta ?? view.privacy.delta ?? null,
        wallSeconds: (performance.now() - started) / 1000,
        ranks: [...ranksSeen].sort((a, b) => a - b),
        clientsEnrolled: view.clients,
        droppedClientRounds: result.dropped,
        refusedUpdates: refused,
        notes: capNotes,
      };
      if (view.status !== 'completed') o.log(`[${strategy}] job ${view.status}: ${view.reason ?? ''}`);
      } catch (e) {
        const reason = isFedloraError(e) ? e.message : `${(e as Error).name}: ${(e as Error).message}`;
        o.log(`[${strategy}] failed: ${reason}`);
        strategies[strategy] = failedStrategyReport(strategies[strategy]?.jobId ?? '', reason, (performance.now() - started) / 1000);
      }
    }
    if (task.language !== null && o.language?.baselines === true) {
      const { runLanguageBaselines } = await import('./language-task.js');
      const rank = forStrategy(o.rank, 'fedavg');
      baselines = await runLanguageBaselines(task.language, pool, partition, { rounds: o.rounds, epochs: o.epochs, batchSize: o.batchSize, lr: forStrategy(o.lr, 'fedavg'), rank, alpha: o.alpha ?? rank, seed: o.seed }, o.log);
    }
  } finally {
    await pool?.close();
    await coordinator.stop();
    rmSync(stateRoot, { recursive: true, force: true });
  }
  const report: SimReport = SimReportSchema.parse({
    tool: 'fedlora sim',
    createdAt: new Date().toISOString(),
    seed: o.seed,
    config: {
      data: o.data, clients: o.clients, rounds: o.rounds, clientsPerRound: k, partition: describePartitioner(o.partitioner), rank: describePerStrategy(o.rank), ranks: o.ranks ?? null, alpha: o.alpha ?? null,
      epochs: o.epochs, batchSize: o.batchSize, lr: describePerStrategy(o.lr), dpEpsilon: o.dpEpsilon ?? null, dpClip: o.dpClip, delta: o.delta, userDpNoise: o.userDpNoise ?? null, userDpClip: o.userDpClip,
      secureAggregation: o.secureAggregation ?? null,
      dropout: o.dropout, testFraction: o.testFraction, publicFraction: o.publicFraction, publicLabels: o.publicLabels === undefined ? null : [...o.publicLabels],
      hiddenSizes: o.hiddenSizes, pretrainEpochs: o.pretrainEpochs, workers: o.workers, backend: o.backend,
      ...(o.language !== undefined && { language: o.language }),
    },
    data: { ...task.data, partition: describePartitioner(o.partitioner), clientRows: partition.map((p) => p.length), classCounts: classCounts(task.labels, partition, task.data.numLabels) },
    base: task.base,
    strategies,
    ...(baselines !== null && { baselines }),
    wallSeconds: (performance.now() - t0) / 1000,
    peakRssMiB: Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20,
  });
  const jsonPath = join(out, 'report.json');
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  const { renderReportHtml } = await import('./report-html.js');
  const htmlPath = join(out, 'report.html');
  writeFileSync(htmlPath, renderReportHtml(report));
  return { report, jsonPath, htmlPath };
}

function validate(o: SimOptions): void {
  const bad = (option: string, rule: string): never => {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} ${rule}`, { option });
  };
  if (!Number.isInteger(o.clients) || o.clients < 1) bad('clients', `must be an integer >= 1, got ${o.clients}`);
  if (!Number.isInteger(o.rounds) || o.rounds < 1) bad('rounds', `must be an integer >= 1, got ${o.rounds}`);
  if (o.clientsPerRound !== undefined && (o.clientsPerRound < 1 || o.clientsPerRound > o.clients)) bad('clients-per-round', `must be in 1..${o.clients} (--clients), got ${o.clientsPerRound}`);
  if (!(o.dropout >= 0 && o.dropout < 1)) bad('dropout', `must be in [0, 1), got ${o.dropout}`);
  if (o.strategies.length === 0) bad('strategy', 'names no strategy');
  if (o.secureAggregation !== undefined) {
    if (o.userDpNoise !== undefined) bad('user-dp-noise', 'cannot combine with --secure-aggregation: the coordinator never sees an update to noise; use --secure-dp-noise (distributed DP)');
    if (o.ranks !== undefined) bad('ranks', 'cannot combine with --secure-aggregation: a secure sum needs one rank for every client');
    if (o.strategies.length === 1 && !STRATEGY_TRAITS[o.strategies[0]!].aggregateIsSum) bad('secure-aggregation', "cannot protect flora: its aggregate is not a sum (FLoRA stacks each client's factors); use fedavg, ffa or fedsb");
  }
  if (o.userDpNoise !== undefined && o.strategies.length === 1 && !STRATEGY_TRAITS[o.strategies[0]!].aggregateIsSum) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', '--user-dp-noise: user-level DP needs a strategy whose aggregate is a sum; flora stacks each client apart: use --dp-epsilon (client DP-SGD) instead', { option: 'user-dp-noise' });
  }
}
