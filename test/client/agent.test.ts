/**
 * The client agent's parts: backoff, the payload contracts with the coordinator's own codecs,
 * client DP calibration, the state folder (modes, enrolment record), and, against a real
 * coordinator, key pinning and resuming with a stored enrolment after the agent stopped.
 */
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { backoffDelay, jobIdFromUrl } from '../../client/agent/connection.js';
import { clientDpSettings } from '../../client/agent/client-dp.js';
import { StateFolder, ENROLMENT_FILE, KEYS_FILE } from '../../client/agent/state-folder.js';
import { decodeOfferedState, encodeUpdate } from '../../client/agent/update-payload.js';
import { barProgress, quietProgress } from '../../client/agent/progress.js';
import { decodeUpdate } from '../../coordinator/engine/update-decoder.js';
import { encodeOfferedAdapter } from '../../coordinator/state-codec.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import type { Adapter } from '../../shared/adapter.js';
import { isFedloraError } from '../../shared/errors.js';
import { PlanSchema, type Plan } from '../../shared/protocol/events.js';
import { HandClient } from '../e2e/hand-client.js';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { WorkerTrainer } from '../../client/agent/worker-trainer.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun, tempDir } from '../e2e/harness.js';

const MODULES = [
  { path: 'layers.0', outFeatures: 12, inFeatures: 64, rank: 2, alpha: 4 },
  { path: 'head', outFeatures: 10, inFeatures: 12, rank: 2, alpha: 4 },
];

function plan(overrides: Record<string, unknown> = {}): Plan {
  return PlanSchema.parse({
    strategy: 'fedavg',
    variant: 'lora',
    rank: 2,
    alpha: 4,
    modules: MODULES,
    trainable: ['A', 'B'],
    start: 'global',
    updateTensors: MODULES.flatMap((m) => [
      { name: `base_model.model.${m.path}.lora_A.weight`, shape: [m.rank, m.inFeatures] },
      { name: `base_model.model.${m.path}.lora_B.weight`, shape: [m.outFeatures, m.rank] },
    ]),
    training: { epochs: 1, batchSize: 16, lr: 0.01, schedule: 'constant', warmupSteps: 0, weightDecay: 0 },
    seed: 3,
    ...overrides,
  });
}

function adapter(seed: number): Adapter {
  const values = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 100 + k * 10 + i));
  return {
    layout: { variant: 'lora', modules: MODULES.map((m) => ({ ...m })) },
    factors: new Map(MODULES.map((m, k) => [m.path, { A: values(m.rank * m.inFeatures, 2 * k), B: values(m.outFeatures * m.rank, 2 * k + 1) }])),
  };
}

describe('reconnect backoff', () => {
  it('grows exponentially to the maximum, with the jitter inside its bounds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const options = { initialDelayMs: 100, maxDelayMs: 5000, jitter: 0.5 };
        const base = Math.min(5000, 100 * 2 ** attempt);
        const d = backoffDelay(attempt, options, () => r);
        expect(d).toBeGreaterThanOrEqual(base * 0.5 - 1e-9);
        expect(d).toBeLessThanOrEqual(Math.min(5000, base * 1.5) + 1e-9);
      }),
    );
    // Without jitter: 100, 200, 400, ... capped at 5000.
    expect([0, 1, 2, 3, 6, 20].map((a) => backoffDelay(a, { initialDelayMs: 100, maxDelayMs: 5000, jitter: 0 }))).toEqual([100, 200, 400, 800, 5000, 5000]);
  });

  it('reads a job id from a coordinator URL path', () => {
    expect(jobIdFromUrl('http://127.0.0.1:8080/api/jobs/abc_1')).toBe('abc_1');
    expect(jobIdFromUrl('http://127.0.0.1:8080/jobs/x-2/')).toBe('x-2');
    expect(jobIdFromUrl('http://127.0.0.1:8080')).toBeUndefined();
  });
});

describe('payloads agree with the coordinator', () => {
  it('an encoded update decodes with the coordinator decoder to the same tensors, count and metrics', () => {
    const p = plan();
    const trained = adapter(1);
    const bytes = encodeUpdate(trained, p, 48, { loss: 0.5, accuracy: 0.75, bad: NaN });
    const decoded = decodeUpdate(bytes, p, 'client-1');
    expect(decoded.update.numExamples).toBe(48);
    expect(decoded.metrics).toEqual({ loss: 0.5, accuracy: 0.75 });
    for (const m of MODULES) {
      expect(decoded.update.adapter.factors.get(m.path)!.A).toEqual(trained.factors.get(m.path)!.A);
      expect(decoded.update.adapter.factors.get(m.path)!.B).toEqual(trained.factors.get(m.path)!.B);
    }
  });

  it('sends exactly the planned tensors: only B for an FFA plan, and refuses a plan tensor the model lacks', () => {
    const ffa = plan({ variant: 'ffa', trainable: ['B'], updateTensors: MODULES.map((m) => ({ name: `base_model.model.${m.path}.lora_B.weight`, shape: [m.outFeatures, m.rank] })) });
    expect(decodeUpdate(encodeUpdate(adapter(2), ffa, 5, {}), ffa, 'c').update.adapter.factors.get('head')!.A).toBeUndefined();
    const missing = plan({ updateTensors: [{ name: 'base_model.model.layers.9.lora_A.weight', shape: [2, 64] }] });
    expect(() => encodeUpdate(adapter(2), missing, 5, {})).toThrow(/FL_ERR_UPDATE_TENSORS: .*layers\.9\.lora_A\.weight/);
  });

  it("reads the coordinator's offered state, also from a Buffer that is a view into a larger pool", () => {
    const a = adapter(3);
    const bytes = encodeOfferedAdapter(a);
    const pool = Buffer.alloc(bytes.length + 13);
    pool.set(bytes, 13);
    for (const view of [bytes, pool.subarray(13)]) {
      const back = decodeOfferedState(view)!;
      expect(back.layout.modules.map((m) => [m.path, m.rank, m.alpha])).toEqual(MODULES.map((m) => [m.path, m.rank, m.alpha]));
      for (const m of MODULES) expect(back.factors.get(m.path)!.B).toEqual(a.factors.get(m.path)!.B);
    }
    expect(decodeOfferedState(encodeOfferedAdapter(null))).toBeNull();
  });
});

describe('progress display', () => {
  it('draws a cli-progress bar per round on a terminal, with the step, loss and rate', async () => {
    let out = '';
    const tty = { isTTY: true, columns: 120, write: (chunk: string) => ((out += chunk), true), cursorTo: () => true, clearLine: () => true, moveCursor: () => true, on: () => tty, removeListener: () => tty };
    const progress = await barProgress(tty as unknown as NodeJS.WriteStream);
    progress.roundStart(3, 1, 10);
    progress.step({ epoch: 1, epochs: 1, step: 4, totalSteps: 10, examples: 64, loss: 0.5, lr: 0.01, examplesPerSecond: 321 });
    progress.roundEnd();
    progress.info('round 3 committed');
    progress.stop();
    expect(out).toContain('round 3 (try 2)');
    expect(out).toMatch(/4\/10 steps \| loss 0\.5000 \| 321 ex\/s/);
    expect(out).toContain('round 3 committed\n');
  });
});

describe('client DP', () => {
  it('calibrates the smallest sigma whose epsilon over every round of the job meets the target', () => {
    const p = plan({ clientDp: { clip: 1, targetEpsilon: 3, delta: 1e-5, rounds: 4 } });
    const s = clientDpSettings(p, 48)!;
    expect(s.calibrated).toBe(true);
    expect(s.samplingRate).toBeCloseTo(1 / 3, 12);
    expect(s.stepsPerRound).toBe(3); // one epoch = 1/q Poisson-sampled steps
    const at = (sigma: number): number => epsilonOfSampledGaussian(s.samplingRate, sigma, s.stepsPerRound * 4, 1e-5).epsilon;
    expect(at(s.noiseMultiplier)).toBeLessThanOrEqual(3);
    // 0.1% less noise misses the target: the calibration is tight (its tolerance is 1e-9 relative).
    expect(at(s.noiseMultiplier * 0.999)).toBeGreaterThan(3);
    expect(clientDpSettings(plan({ clientDp: { clip: 0.5, noiseMultiplier: 1.3, rounds: 4 } }), 48)).toMatchObject({ noiseMultiplier: 1.3, clipNorm: 0.5, calibrated: false });
    expect(clientDpSettings(plan(), 48)).toBeNull();
  });
});

describe('state folder', () => {
  it('keeps the keys (0600) in a private folder (0700), the same keys on reopen, and one enrolment', () => {
    const dir = join(tempDir('state'), 'client');
    const a = StateFolder.open(dir);
    expect(a.createdKeys).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, KEYS_FILE)).mode & 0o777).toBe(0o600);
    const b = StateFolder.open(dir);
    expect(b.createdKeys).toBe(false);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(a.enrolment('http://127.0.0.1:1', 'job1')).toBeNull();
    b.saveEnrolment('http://127.0.0.1:1/some/path', 'job1', 'client-7');
    expect(statSync(join(dir, ENROLMENT_FILE)).mode & 0o777).toBe(0o600);
    expect(a.enrolment('http://127.0.0.1:1', undefined)).toMatchObject({ jobId: 'job1', clientId: 'client-7', coordinator: 'http://127.0.0.1:1' });
    expect(() => a.enrolment('http://127.0.0.1:1', 'job2')).toThrow(/FL_ERR_CLIENT_STATE: .*client 'client-7' of job 'job1'/);
    expect(() => a.enrolment('http://127.0.0.1:2', 'job1')).toThrow(/FL_ERR_CLIENT_STATE/);
    writeFileSync(join(dir, ENROLMENT_FILE), '{"format": 1}', { mode: 0o600 });
    expect(() => a.enrolment('http://127.0.0.1:1', 'job1')).toThrow(/FL_ERR_CLIENT_STATE: .*not a valid enrolment record/);
  });
});

describe('agent against a real coordinator', () => {
  let modelDir: string;
  let sha256: string;
  let shards: string[];
  beforeAll(async () => {
    ({ modelDir, sha256, shards } = await mlpFixture(2, 32));
  });

  it.each(['flora', 'fedsb'] as const)('frees every tensor it creates over a %s job (tf.memory().numTensors flat)', async (strategy) => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob(strategy, sha256, { rounds: 3, clientsPerRound: 1, minClients: 1 }));
      const client = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!);
      const before = tf.memory().numTensors;
      const summary = await client.agent.run();
      expect(summary.roundsTrained).toBe(3);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await coordinator.stop();
    }
  });

  it('a connection lost mid-round is re-established; the update of the round in training is sent once, on the new connection', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      // Two clients per round, one needed: a silent protocol client, offered too, holds round 0 open
      // (selected, connected, never sending) until the agent's update is in, whatever the timing.
      const jobId = await api.createJob(mlpJob('ffa', sha256, { rounds: 2, clientsPerRound: 2, minClients: 1 }));
      const model = await loadBaseModel(modelDir);
      const silent = new HandClient(api.url);
      await silent.join(jobId, await api.token(jobId), { sha256, modules: [...model.adaptable] });
      let cut = false;
      let client: Awaited<ReturnType<typeof makeAgent>> | null = null;
      const progress = {
        ...quietProgress((line) => {
          if (line === 'round 0: update accepted') silent.close();
        }),
        roundStart: (round: number) => {
          if (round !== 0 || cut) return;
          cut = true;
          // Drop the transport under the agent (as a network failure would): socket.io-client reconnects by itself.
          (client!.agent as unknown as { socket: { io: { engine: { close(): void } } } }).socket.io.engine.close();
        },
      };
      client = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!, { progress });
      const summary = await startRun(client.agent);
      expect(cut).toBe(true);
      expect(summary.status).toBe('completed');
      expect(summary.reconnects).toBeGreaterThanOrEqual(1);
      // Round 0 was trained once, before or across the reconnection, and its update was accepted once.
      expect(summary.roundsTrained).toBe(2);
      expect(summary.updatesAccepted).toBe(2);
      expect(summary.updatesRefused).toEqual([]);
      const job = await api.job(jobId);
      expect(job.roundsDetail[0]!.participants).toEqual([client.agent.id]);
      expect(job.roundsDetail[0]!.attempts).toBe(1);
      expect(job.roundsDetail[0]!.refused).toBe(0);
    } finally {
      await coordinator.stop();
    }
  });

  it('trains in a worker thread: the job completes and the agent thread keeps turning while a round trains', async () => {
    const { coordinator, api } = await startCoordinator();
    const trainers = await Promise.all(shards.map((dataFile) => WorkerTrainer.start({ modelDir, dataFile, backend: 'wasm' })));
    try {
      // Long enough rounds (32 examples, batch 4, 25 epochs = 200 steps) that training on this thread would stall it.
      const jobId = await api.createJob(mlpJob('fedavg', sha256, { rounds: 2, clientsPerRound: 2, minClients: 2, training: { epochs: 25, batchSize: 4, lr: 0.01 } }));
      let trainingStarted = 0;
      let trainingMs = 0;
      const progress = { ...quietProgress(), roundStart: () => (trainingStarted = performance.now()), roundEnd: () => (trainingMs += performance.now() - trainingStarted) };
      const clients = await Promise.all(shards.map(async (file, i) => makeAgent(api.url, jobId, await api.token(jobId), modelDir, file, { trainer: trainers[i]!, ...(i === 0 && { progress }) })));
      let last = performance.now();
      let maxGap = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 5);
      const summaries = await Promise.all(clients.map((c) => startRun(c.agent)));
      clearInterval(ticker);
      for (const s of summaries) {
        expect(s.status).toBe('completed');
        expect(s.updatesAccepted).toBe(2);
        expect(s.roundsFailed).toEqual([]);
      }
      // The agent thread never stopped for more than a fraction of the training time.
      expect(trainingMs).toBeGreaterThan(500);
      expect(maxGap).toBeLessThan(trainingMs / 4);
    } finally {
      await Promise.all(trainers.map((t) => t.close()));
      await coordinator.stop();
    }
  });

  it('refuses a coordinator whose key differs from the pinned (or configured) one, before authenticating', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', sha256, { clientsPerRound: 1, minClients: 1 }));
      const stateDir = tempDir('state');
      const origin = new URL(api.url).origin;
      writeFileSync(join(stateDir, 'pins.json'), JSON.stringify({ format: 'fedlora-pins/1', coordinators: { [origin]: { fingerprint: 'ab'.repeat(32), pinnedAt: '2026-01-01T00:00:00Z' } } }), { mode: 0o600 });
      const client = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!, { stateDir });
      const e = await client.agent.run().then(() => null, (err: unknown) => err);
      expect(isFedloraError(e, 'FL_ERR_KEY_CHANGED')).toBe(true);
      expect((e as Error).message).toContain(origin);
      expect((await api.job(jobId)).clients).toBe(0);
      // A fingerprint given in configuration decides alone: a wrong one is refused, the coordinator's own is accepted.
      const wrong = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!, { coordinatorFingerprint: 'cd'.repeat(32) });
      expect(await wrong.agent.run().then(() => null, (err: unknown) => (err as { code?: string }).code)).toBe('FL_ERR_KEY_CHANGED');
      const right = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!, { coordinatorFingerprint: coordinator.printableFingerprint });
      expect((await startRun(right.agent)).status).toBe('completed');
    } finally {
      await coordinator.stop();
    }
  });

  it('a stopped agent restarted on its state folder re-authenticates with its client id and finishes the job', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', sha256, { rounds: 3, clientsPerRound: 2, minClients: 2 }));
      const stateDir = tempDir('state');
      let stopFirst = (): void => undefined;
      const first = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[0]!, {
        stateDir,
        progress: { ...quietProgress(), roundStart: (round) => round === 1 && stopFirst() },
      });
      stopFirst = () => first.agent.stop('simulated crash of the client');
      const other = await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[1]!);
      const otherRun = startRun(other.agent);
      const stopped = await first.agent.run().then(() => null, (e: unknown) => e);
      expect(isFedloraError(stopped, 'FL_ERR_CONNECTION')).toBe(true);
      const firstId = first.agent.id;
      // Same state folder, no token: the stored enrolment is used.
      const again = await makeAgent(api.url, jobId, undefined, modelDir, shards[0]!, { stateDir });
      const [resumed, otherSummary] = await Promise.all([again.agent.run(), otherRun]);
      expect(again.agent.id).toBe(firstId);
      expect(resumed.status).toBe('completed');
      expect(otherSummary.status).toBe('completed');
      const job = await api.job(jobId);
      expect(job.clients).toBe(2);
      expect(job.round).toBe(3);
      for (const r of job.roundsDetail) expect(r.participants).toContain(firstId);
    } finally {
      await coordinator.stop();
    }
  });
});
