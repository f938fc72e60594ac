/**
 * An agent given several coordinator URLs (`--coordinator URL,URL`) moves to the next when the one
 * it is on goes away: three agents on node A, A stops in the middle of round 1, node B (same
 * database and key pair) comes up, the agents carry on there under the same pinned key and client
 * ids, and the job completes. The multi-node e2e (test/e2e/multi-node.test.ts) does the same with
 * live PostgreSQL nodes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { coordinatorUrls } from '../../client/agent/connection.js';
import { quietProgress, type AgentProgress } from '../../client/agent/progress.js';
import { ADMIN_TOKEN, api, freePort, makeAgent, mlpFixture, mlpJob, startRun, tempDir } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];
const running: Coordinator[] = [];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(3, 48));
});

afterAll(async () => {
  for (const c of running) await c.stop();
});

describe('agent failover over several coordinator URLs', () => {
  it('parses a comma-separated --coordinator list, dropping duplicates', () => {
    expect(coordinatorUrls('http://127.0.0.1:1, http://127.0.0.1:2/,http://127.0.0.1:1/jobs/x')).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2/']);
    expect(() => coordinatorUrls('http://127.0.0.1:1,ftp://x')).toThrow(/FL_ERR_INVALID_ARGUMENT.*ftp:\/\/x/);
  });

  it('continues on the second node once the first is closed, under the same pin and client ids', async () => {
    const db = join(tempDir('failover'), 'fedlora.db');
    const [portA, portB] = [await freePort(), await freePort()];
    const start = (port: number) => Coordinator.start({ db, port, adminToken: ADMIN_TOKEN, logLevel: 'silent', engine: { startGraceMs: 200 } });
    const a = await start(portA);
    running.push(a);
    const http = api(a.url);
    const jobId = await http.createJob(mlpJob('fedavg', sha256, { rounds: 3 }));

    let stopped!: () => void;
    const whenStopped = new Promise<void>((resolve) => (stopped = resolve));
    let stops = 0;
    const logs: string[][] = shards.map(() => []);
    const progress = (log: string[]): AgentProgress => ({
      ...quietProgress((line) => log.push(line)),
      roundStart(round) {
        if (round === 1 && stops++ === 0) void a.stop().then(stopped);
      },
    });
    const clients = await Promise.all(
      shards.map(async (file, i) => makeAgent(a.url, jobId, await http.token(jobId), modelDir, file, { fallbackUrls: [`http://127.0.0.1:${portB}`], progress: progress(logs[i]!) })),
    );
    const ids: Array<string | null> = [];
    const runs = clients.map((c) => startRun(c.agent));
    await whenStopped;
    running.splice(running.indexOf(a), 1);
    for (const c of clients) ids.push(c.agent.id);

    const b = await start(portB);
    running.push(b);
    const summaries = await Promise.all(runs);
    expect(summaries.map((s) => s.status)).toEqual(['completed', 'completed', 'completed']);
    const job = await api(b.url).job(jobId);
    expect(job).toMatchObject({ status: 'completed', round: 3 });
    clients.forEach((c, i) => {
      expect(c.agent.id).toBe(ids[i]); // no second enrolment
      expect(logs[i]!.some((l) => l.startsWith(`reconnected to http://127.0.0.1:${portB}`))).toBe(true);
      // One pin, under the first URL: node B's key was checked against it (a different key fails the run).
      const pins = JSON.parse(readFileSync(join(c.stateDir, 'pins.json'), 'utf8')) as { coordinators: Record<string, unknown> };
      expect(Object.keys(pins.coordinators)).toEqual([`http://127.0.0.1:${portA}`]);
    });
  });
});
