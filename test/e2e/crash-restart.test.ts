/**
 * SIGKILL of the coordinator (a child process) in the middle of a round (plain, and secure: the
 * round's keys and masked sum die with it, and the new attempt runs with fresh keys), restart on
 * the same database and port: the agents reconnect by themselves (backoff), re-authenticate with their
 * client ids, the job resumes from the last committed round and completes, and every round
 * committed before the kill is in the store exactly as it was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../coordinator/store/store.js';
import { quietProgress, type AgentProgress } from '../../client/agent/progress.js';
import { api, freePort, makeAgent, mlpFixture, mlpJob, startChildCoordinator, startRun, tempDir, type ChildCoordinator } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];
const children: ChildCoordinator[] = [];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(3, 48));
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe.each([
  { name: 'plain', secure: false },
  { name: 'secure', secure: true },
])('coordinator killed mid-round ($name rounds)', ({ secure }) => {
  it('restarts from its database; the agents reconnect and the job completes with every committed round intact', async () => {
    const db = join(tempDir('crash'), 'fedlora.db');
    const port = await freePort();
    let coordinator = await startChildCoordinator(db, port);
    children.push(coordinator);
    const http = api(coordinator.url);
    const jobId = await http.createJob(mlpJob('fedavg', sha256, { rounds: 3, ...(secure && { secureAggregation: { enabled: true } }) }));

    // The first agent to start training round 1 kills the coordinator: round 0 is committed, round 1
    // is open and no round-1 update can have been accepted yet (none has finished training).
    let killed!: () => void;
    const whenKilled = new Promise<void>((resolve) => (killed = resolve));
    let kills = 0;
    const log: string[] = [];
    const killer: AgentProgress = {
      ...quietProgress((line) => log.push(line)),
      roundStart(round) {
        if (round === 1 && kills === 0) {
          kills++;
          coordinator.kill('SIGKILL');
          killed();
        }
      },
    };
    const clients = await Promise.all(shards.map(async (file) => makeAgent(http.url, jobId, await http.token(jobId), modelDir, file, { progress: killer })));
    const runs = clients.map((c) => startRun(c.agent));

    await whenKilled;
    expect(await coordinator.exited).toBe('SIGKILL');
    // What the killed coordinator had committed, read from its database file.
    const store = Store.open(db);
    const before = store.rounds(jobId);
    expect(store.requireJob(jobId).round).toBe(1);
    store.close();
    expect(before.map((r) => r.round)).toEqual([0]);

    coordinator = await startChildCoordinator(db, port);
    children.push(coordinator);
    const summaries = await Promise.all(runs);

    const job = await http.job(jobId);
    expect(job.status).toBe('completed');
    expect(job.round).toBe(3);
    expect(job.roundsDetail.map((r) => r.round)).toEqual([0, 1, 2]);
    const after = Store.open(db);
    try {
      // The round committed before the kill is unchanged, field for field.
      expect(after.rounds(jobId)[0]).toEqual(before[0]);
    } finally {
      after.close();
    }
    // Round 1 was open at the kill: it was run again (a new attempt) after the restart.
    expect(job.roundsDetail[1]!.attempts).toBeGreaterThanOrEqual(2);
    for (const r of job.roundsDetail) {
      expect(r.participants).toHaveLength(3);
      expect(r.secureAggregation === null).toBe(!secure);
    }
    for (const s of summaries) {
      expect(s.status).toBe('completed');
      expect(s.roundsFailed, log.join('\n')).toEqual([]);
      expect(s.jobRounds).toBe(3);
      expect(s.reconnects).toBeGreaterThanOrEqual(1);
      // Every round's update of every agent was accepted once (round 1's after the restart).
      expect(s.updatesAccepted).toBe(3);
    }
    coordinator.kill('SIGTERM');
    await coordinator.exited;
    // Two coordinator child processes start (tsx, SQLite, a worker pool): allow for a loaded machine.
  }, 120_000);
});
