/**
 * Jobs as the API sees them: creation from a validated spec, the status view, enrolment tokens,
 * and the current global adapter as a PEFT directory or a tar of one.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Adapter } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, writePeftAdapterDir } from '../shared/peft.js';
import { AdaptiveClipSchema, JobSpecSchema, jobAlpha, STRATEGY_TRAITS, type JobSpec, type ModuleShape } from '../shared/protocol/job-spec.js';
import type { EnrolmentResponse, JobList, JobView, PrivacyView, RoundView } from '../shared/protocol/http.js';
import { parseOrThrow } from '../shared/protocol/validate.js';
import { createStrategy } from '../aggregation/registry.js';
import type { Strategy, JobSpec as StrategyJobSpec } from '../aggregation/strategy.js';
import { DpFedAvgStrategy } from '../aggregation/dp-fedavg.js';
import { compressFloraAdapter } from '../aggregation/flora.js';
import { checkJobSpec } from '../aggregation/validate-update.js';
import { decodeGlobalState } from './state-codec.js';
import type { JobRecord, Store } from './store/store.js';
import { writeUstar } from './export/ustar.js';
import { privacyView } from './privacy-view.js';

/**
 * The modules whose shape caps the job's rank: a rank above min(m, n) adds nothing a rank of
 * min(m, n) cannot express, and Fed-SB's orthonormal A rows and B columns do not exist there.
 */
export function rankCaps(rank: number, layout: readonly ModuleShape[]): Array<{ path: string; rank: number; cap: number; message: string }> {
  return layout
    .filter((m) => Math.min(m.outFeatures, m.inFeatures) < rank)
    .map((m) => {
      const cap = Math.min(m.outFeatures, m.inFeatures);
      return { path: m.path, rank, cap, message: `module '${m.path}' [${m.outFeatures}, ${m.inFeatures}]: rank ${rank} capped at min(m, n) = ${cap} (same scaling alpha / rank)` };
    });
}

/**
 * The strategy-level spec (aggregation/strategy.ts) of a job with a known layout: every module at
 * the job's rank, capped at min(m, n) ({@link rankCaps}) with alpha keeping the job's scaling.
 */
export function strategySpecOf(spec: JobSpec, layout: readonly ModuleShape[]): StrategyJobSpec {
  const s = jobAlpha(spec, spec.rank) / spec.rank;
  return {
    modules: layout.map((m) => {
      const rank = Math.min(spec.rank, m.outFeatures, m.inFeatures);
      return { path: m.path, outFeatures: m.outFeatures, inFeatures: m.inFeatures, rank, alpha: rank === spec.rank ? jobAlpha(spec, spec.rank) : s * rank };
    }),
    baseModelSha256: spec.model.sha256,
    ...(spec.model.name !== undefined && { baseModelName: spec.model.name }),
  };
}

/**
 * The job's strategy from the registry, wrapped in user-level DP-FedAvg (aggregation/dp-fedavg.ts)
 * when the spec asks for coordinator-side DP. The divisor n is clientsPerRound (a fixed
 * denominator: each client's sensitivity is C / k whatever the round's participation).
 * @throws FL_ERR_INVALID_CONFIG naming the privacy field a parameter is wrong in
 */
export function jobStrategy(spec: JobSpec): Strategy {
  const inner = createStrategy(spec.strategy, { fedavg: { noise: spec.aggregationNoise ?? 'off' } });
  const dp = spec.privacy.user;
  if (dp === undefined) return inner;
  const a = dp.adaptive === true ? AdaptiveClipSchema.parse({}) : dp.adaptive;
  try {
    return new DpFedAvgStrategy(inner, {
      noiseMultiplier: dp.noiseMultiplier,
      clipNorm: dp.clip,
      sampledClients: spec.clientsPerRound,
      ...(a !== undefined && {
        adaptive: { targetUnclippedQuantile: a.targetQuantile, learningRate: a.learningRate, ...(a.countNoise !== undefined && { countNoiseStd: a.countNoise }) },
      }),
    });
  } catch (e) {
    if (e instanceof FedloraError) throw new FedloraError('FL_ERR_INVALID_CONFIG', `job spec: privacy.user: ${e.message}`, { field: 'privacy.user' }, { cause: e });
    throw e;
  }
}

/**
 * Validates a job body (zod, then the strategy's own checks) and stores the job as `pending`.
 * @throws FL_ERR_INVALID_CONFIG naming the field; FL_ERR_UNKNOWN_STRATEGY
 */
export function createJob(store: Store, body: unknown, now = Date.now()): JobRecord {
  const spec = parseOrThrow(JobSpecSchema, body, 'job spec');
  createStrategy(spec.strategy);
  jobStrategy(spec); // refuses DP parameters the wrapper does not take, naming them
  const above = STRATEGY_TRAITS[spec.strategy].heterogeneousRanks === 'zero-padded' ? spec.ranks?.find((r) => r > spec.rank) : undefined;
  if (above !== undefined) {
    // fedavg's plan refuses such a client; say so at creation rather than at the first round
    throw new FedloraError('FL_ERR_INVALID_CONFIG', `job spec: ranks: fedavg cannot train a client at rank ${above}, above the job's rank ${spec.rank}; set rank to ${Math.max(...spec.ranks!)} (smaller ranks are zero-padded) or use flora`, { field: 'ranks' });
  }
  if (spec.model.modules !== undefined) {
    const unmatched = spec.model.modules.filter((m) => !spec.model.targetModules.some((t) => m.path === t || m.path.endsWith(`.${t}`)));
    if (unmatched.length > 0) {
      throw new FedloraError('FL_ERR_INVALID_CONFIG', `job spec: model.modules: '${unmatched[0]!.path}' does not match any of targetModules (${spec.model.targetModules.join(', ')})`, { field: 'model.modules' });
    }
    try {
      checkJobSpec(spec.strategy, strategySpecOf(spec, spec.model.modules).modules);
    } catch (e) {
      if (e instanceof FedloraError) throw new FedloraError('FL_ERR_INVALID_CONFIG', `job spec: model.modules: ${e.message}`, { field: 'model.modules' }, { cause: e });
      throw e;
    }
  }
  return store.createJob(spec, now);
}

/**
 * `GET /api/jobs/:id`.
 * @param isConnected whether a client of the job is connected now (the engine knows) @default never
 */
export function jobView(store: Store, id: string, isConnected: (clientId: string) => boolean = () => false): JobView {
  const job = store.requireJob(id);
  const privacy: PrivacyView = privacyView(job.spec, store.ledger(id));
  const clients = store.clientsOfJob(id);
  return {
    id: job.id,
    status: job.status,
    ...(job.status === 'failed' && { reason: job.reason ?? 'unknown' }),
    round: job.round,
    rounds: job.spec.rounds,
    strategy: job.spec.strategy,
    createdAt: job.createdAt,
    spec: job.spec,
    roundsDetail: store.rounds(id).map((r) => ({
      round: r.round,
      attempts: r.attempts,
      participants: r.participants,
      metrics: r.metrics,
      startedAt: r.startedAt,
      committedAt: r.committedAt,
      accepted: r.accepted,
      refused: r.refused,
      secureAggregation: secureRoundView(r.metrics),
    })),
    privacy,
    clients: clients.length,
    clientList: clients.map((c) => ({
      id: c.id,
      enrolmentIndex: c.enrolmentIndex,
      backend: c.backend,
      agent: c.agent,
      enrolledAt: c.createdAt,
      lastSeenAt: c.lastSeenAt,
      connected: isConnected(c.id),
    })),
  };
}

/** The secure aggregation figures of a round, from the metrics the runner committed with it (job-runner.ts). */
function secureRoundView(m: Readonly<Record<string, number>>): RoundView['secureAggregation'] {
  if (m.secure_aggregation !== 1) return null;
  return {
    survivors: m.clients ?? 0,
    droppedClients: m.secagg_dropped ?? 0,
    droppedAtUnmasking: m.secagg_unmask_dropped ?? 0,
    badShares: m.secagg_bad_shares ?? 0,
    errorBound: m.secagg_error_bound ?? 0,
    ...(m.secagg_noise_multiplier !== undefined && { noiseMultiplier: m.secagg_noise_multiplier }),
  };
}

/** `GET /api/jobs`. */
export function jobList(store: Store): JobList {
  return { jobs: store.listJobs().map((j) => ({ id: j.id, status: j.status, round: j.round, rounds: j.spec.rounds, strategy: j.spec.strategy, createdAt: j.createdAt })) };
}

/** `POST /api/jobs/:id/enrolments`. Refused for a job that has ended. */
export function createEnrolment(store: Store, jobId: string, expiresInSeconds: number, now = Date.now()): EnrolmentResponse {
  const job = store.requireJob(jobId);
  if (job.status === 'completed' || job.status === 'failed') {
    throw new FedloraError('FL_ERR_ROUND_STATE', `job '${jobId}' is ${job.status}; it takes no new clients`, { jobId });
  }
  const expiresAt = now + expiresInSeconds * 1000;
  return { token: store.createEnrolmentToken(jobId, expiresAt, now), jobId, expiresAt };
}

/**
 * The job's current global adapter: the last committed state's (fedsb keeps its R here; the PEFT
 * writer folds it). FLoRA has none before its first round.
 * @throws FL_ERR_ROUND_STATE when there is no adapter yet
 */
export function currentAdapter(store: Store, jobId: string): Adapter {
  const job = store.requireJob(jobId);
  const stored = store.latestState(jobId);
  const adapter = stored === null ? null : decodeGlobalState(stored).adapter;
  if (adapter === null) {
    throw new FedloraError(
      'FL_ERR_ROUND_STATE',
      stored === null ? `job '${jobId}' (${job.status}) has no global adapter yet: it starts when its first client reports its model` : `job '${jobId}' has no global adapter yet: ${job.spec.strategy} has one after its first committed round`,
      { jobId },
    );
  }
  return adapter;
}

/** An adapter to export, and the relative error of its compression when one was asked for. */
export interface ExportedAdapter {
  readonly adapter: Adapter;
  /** ||dW - dW_k||_F / ||dW||_F over all modules, when compressed to a rank. */
  readonly compressionError?: number;
}

/**
 * The job's current adapter, optionally compressed (FLoRA only: its accumulated stacks have rank
 * sum over rounds and clients) to `rank` by a truncated SVD of each module's s B A, which is the best
 * rank-k approximation (Eckart-Young); the relative error is reported.
 * @throws FL_ERR_INVALID_ARGUMENT when a rank is asked for another strategy or is not an integer >= 1
 */
export function adapterForExport(store: Store, jobId: string, rank?: number): ExportedAdapter {
  const adapter = currentAdapter(store, jobId);
  if (rank === undefined) return { adapter };
  const strategy = store.requireJob(jobId).spec.strategy;
  if (!STRATEGY_TRAITS[strategy].freshEachRound) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `rank: only a flora adapter (whose rank grows every round) is compressed on export; this job is ${strategy}`, { field: 'rank' });
  }
  const compressed = compressFloraAdapter(adapter, rank);
  return { adapter: compressed.adapter, compressionError: compressed.relativeError };
}

/**
 * PEFT's `task_type` for a job's adapter: `CAUSAL_LM` for a decoder (llama), null for the mlp
 * classifier, which is a plain torch module and not a transformers task model (PEFT's `SEQ_CLS`
 * would wrap a transformers sequence classifier and look for its classification head), as
 * `fedlora train` writes it. The kind comes from the job spec, else from the module paths (a
 * decoder's are `model.layers.N....`).
 */
export function exportTaskType(spec: JobSpec, adapter: Adapter): 'CAUSAL_LM' | null {
  const kind = spec.model.kind ?? (adapter.layout.modules.every((m) => m.path.startsWith('model.layers.')) ? 'llama' : 'mlp');
  return kind === 'llama' ? 'CAUSAL_LM' : null;
}

/** Writes the job's current adapter as a PEFT directory (adapter_config.json + adapter_model.safetensors). */
export async function exportAdapterDir(store: Store, jobId: string, dir: string, rank?: number): Promise<ExportedAdapter> {
  const exported = adapterForExport(store, jobId, rank);
  await writePeftAdapterDir(dir, exported.adapter, { taskType: exportTaskType(store.requireJob(jobId).spec, exported.adapter) });
  return exported;
}

/** The job's current adapter as a ustar archive of the two PEFT files, at the archive's top level. */
export async function exportAdapterTar(store: Store, jobId: string, rank?: number): Promise<{ tar: Uint8Array; compressionError?: number }> {
  const { adapter, compressionError } = adapterForExport(store, jobId, rank);
  const dir = await mkdtemp(join(tmpdir(), 'fedlora-export-'));
  try {
    await writePeftAdapterDir(dir, adapter, { taskType: exportTaskType(store.requireJob(jobId).spec, adapter) });
    const mtime = Math.floor(Date.now() / 1000);
    const tar = writeUstar([
      { name: ADAPTER_CONFIG_FILE, data: new Uint8Array(await readFile(join(dir, ADAPTER_CONFIG_FILE))), mtime },
      { name: ADAPTER_WEIGHTS_FILE, data: new Uint8Array(await readFile(join(dir, ADAPTER_WEIGHTS_FILE))), mtime },
    ]);
    return { tar, ...(compressionError !== undefined && { compressionError }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
