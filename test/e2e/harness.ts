/**
 * End-to-end harness: real parts on loopback. A coordinator (in-process through
 * `Coordinator.start`, or a child process for SIGKILL tests) on port 0 with a temp SQLite file, a
 * small `mlp` base model written to a temp folder, shards of the digits data as CSV files, and
 * real client agents (client/agent) that train on the tfjs wasm backend.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { CoordinatorConfigInput } from '../../coordinator/config.js';
import type { JobSpecInput } from '../../shared/protocol/job-spec.js';
import { JobViewSchema, type JobView } from '../../shared/protocol/http.js';
import { chooseBackend } from '../../client/backend.js';
import { loadCsv } from '../../client/data/csv.js';
import { DenseMlp, saveDenseMlp } from '../../client/pretrain/mlp.js';
import { MLP_MODEL_TYPE, type MlpConfig } from '../../client/models/mlp-config.js';
import { readMlpCheckpoint } from '../../client/models/mlp-checkpoint.js';
import { ClientAgent, type AgentOptions } from '../../client/agent/agent.js';
import { loadBaseModel, type BaseModel } from '../../client/agent/base-model.js';
import { loadLocalData, type LocalData } from '../../client/agent/local-data.js';
import { StateFolder } from '../../client/agent/state-folder.js';
import type { AgentSummary } from '../../client/agent/summary.js';
import { backendForHello } from '../../client/agent/handshake.js';
import type { BackendInfo } from '../../shared/protocol/events.js';

export const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';

/** digits: 64 pixel features (0..16), 10 classes; a small hidden layer keeps rounds fast. */
export const MLP_CONFIG: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [12], num_labels: 10, hidden_act: 'relu' };
export const MLP_TARGETS = ['layers.0', 'head'];

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `fedlora-e2e-${prefix}-`));
}

/** Writes a random (seeded) base mlp; returns its folder. */
export async function writeBaseModel(seed = 1): Promise<string> {
  const dir = tempDir('model');
  const dense = new DenseMlp(MLP_CONFIG, { mean: new Float32Array(64).fill(8), std: new Float32Array(64).fill(8) }, seed);
  await saveDenseMlp(dense, dir);
  dense.dispose();
  return dir;
}

/**
 * Writes `count` shards of digits rows (disjoint, in file order) as CSV with a header.
 * @param rows rows per shard: one number for all, or one per shard
 * @returns the file paths
 */
export async function writeDigitShards(count: number, rows: number | readonly number[]): Promise<string[]> {
  const digits = await loadCsv('simulations/data/digits.csv.gz', { header: false });
  const dir = tempDir('data');
  const header = [...Array.from({ length: 64 }, (_, i) => `p${i}`), 'label'].join(',');
  let next = 0;
  return Array.from({ length: count }, (_, k) => {
    const n = typeof rows === 'number' ? rows : rows[k]!;
    const lines = [header];
    for (let r = next; r < next + n; r++) {
      lines.push([...digits.features.subarray(r * 64, (r + 1) * 64)].join(',') + `,${digits.labels[r]}`);
    }
    next += n;
    const file = join(dir, `shard-${k}.csv`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  });
}

let backend: BackendInfo | null = null;

/** The wasm backend, chosen once per test file, as the hello reports it. */
export async function wasmBackend(): Promise<BackendInfo> {
  if (backend === null) backend = backendForHello(await chooseBackend({ backend: 'wasm' }));
  return backend;
}

export interface Api {
  readonly url: string;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  createJob(spec: JobSpecInput): Promise<string>;
  token(jobId: string): Promise<string>;
  job(jobId: string): Promise<JobView>;
}

/** The admin HTTP API of a coordinator at `url`. */
export function api(url: string): Api {
  const a: Api = {
    url,
    async call(method, path, body) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
    },
    async createJob(spec) {
      const r = await a.call('POST', '/api/jobs', spec);
      if (r.status !== 201) throw new Error(`job creation failed: ${r.status} ${JSON.stringify(r.json)}`);
      return (r.json as { id: string }).id;
    },
    async token(jobId) {
      const r = await a.call('POST', `/api/jobs/${jobId}/enrolments`, {});
      if (r.status !== 201) throw new Error(`enrolment failed: ${r.status} ${JSON.stringify(r.json)}`);
      return (r.json as { token: string }).token;
    },
    async job(jobId) {
      const r = await a.call('GET', `/api/jobs/${jobId}`);
      return JobViewSchema.parse(r.json);
    },
  };
  return a;
}

/** An in-process coordinator on port 0 with a temp database. */
export async function startCoordinator(config: CoordinatorConfigInput = {}): Promise<{ coordinator: Coordinator; db: string; api: Api }> {
  const db = join(tempDir('coord'), 'fedlora.db');
  const coordinator = await Coordinator.start({ db, port: 0, adminToken: ADMIN_TOKEN, logLevel: 'silent', engine: { startGraceMs: 200 }, ...config });
  return { coordinator, db, api: api(coordinator.url) };
}

/** A job spec for the e2e mlp: small, few rounds, quick local training. */
export function mlpJob(strategy: JobSpecInput['strategy'], sha256: string, overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    strategy,
    rounds: 2,
    clientsPerRound: 3,
    minClients: 3,
    overSelection: 0,
    roundDeadlineSeconds: 120,
    model: { sha256, targetModules: MLP_TARGETS },
    rank: 2,
    seed: 7,
    training: { epochs: 1, batchSize: 16, lr: 0.02 },
    ...overrides,
  };
}

export interface TestClient {
  readonly agent: ClientAgent;
  readonly stateDir: string;
  readonly model: BaseModel;
  readonly data: LocalData;
}

/** A real agent for a job (keys in a fresh state folder), not yet running. */
export async function makeAgent(url: string, jobId: string, token: string | undefined, modelDir: string, dataFile: string, extra: Partial<AgentOptions> & { stateDir?: string } = {}): Promise<TestClient> {
  const stateDir = extra.stateDir ?? tempDir('state');
  const model = await loadBaseModel(modelDir);
  const data = await loadLocalData(dataFile, model);
  const agent = new ClientAgent({
    coordinatorUrl: url,
    jobId,
    ...(token !== undefined && { token }),
    state: StateFolder.open(stateDir),
    model,
    data,
    backend: await wasmBackend(),
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    ...extra,
  });
  return { agent, stateDir, model, data };
}

/** A free TCP port on loopback (bound then released), so a restarted child can listen on the same one. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface ChildCoordinator {
  readonly url: string;
  readonly pid: number;
  /** Resolves with the signal or code when the process has exited. */
  readonly exited: Promise<string>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts the coordinator as a child process (test/e2e/fixtures/coordinator-child.ts) and waits for it to listen. */
export async function startChildCoordinator(db: string, port: number): Promise<ChildCoordinator> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/fixtures/coordinator-child.ts', db, String(port), ADMIN_TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`)));
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const m = /listening (\S+)\n/.exec(text);
      if (m !== null) resolve(m[1]!);
    });
    void exited.then((how) => reject(new Error(`the coordinator child exited (${how}) before listening`)));
  });
  return { url, pid: child.pid!, exited, kill: (signal) => child.kill(signal) };
}

/**
 * Starts an agent's run with a handler attached at once, so a run that fails before the test
 * awaits it is reported where it is awaited rather than as an unhandled rejection (which the tfjs
 * wasm module turns into a process exit).
 */
export function startRun(agent: ClientAgent): Promise<AgentSummary> {
  const run = agent.run();
  run.catch(() => undefined);
  return run;
}

/**
 * The common setup of the agent tests: the wasm backend, a base mlp written to a temp folder (and
 * its SHA-256, the job's model identity), and `shardCount` digit shards of `rows` rows each.
 */
export async function mlpFixture(shardCount: number, rows: number): Promise<{ modelDir: string; sha256: string; shards: string[] }> {
  await wasmBackend();
  const modelDir = await writeBaseModel();
  const { sha256 } = await readMlpCheckpoint(modelDir);
  return { modelDir, sha256, shards: await writeDigitShards(shardCount, rows) };
}
