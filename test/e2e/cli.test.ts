/**
 * `fedlora client join` as a process: two clients run the command (commander, real backend
 * choice, progress in quiet mode since stderr is not a terminal) against a real coordinator;
 * both exit 0 with a summary once the job completes. A second join on the same state folder
 * after the job ended exits 0 at once, saying the job has ended.
 */
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { readMlpCheckpoint } from '../../client/models/mlp-checkpoint.js';
import { mlpJob, startCoordinator, tempDir, writeBaseModel, writeDigitShards } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  modelDir = await writeBaseModel();
  sha256 = (await readMlpCheckpoint(modelDir)).sha256;
  shards = await writeDigitShards(2, 32);
});

function join(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/fixtures/client-cli-child.ts', 'client', 'join', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('fedlora client join (a child process per client)', () => {
  it('enrols, trains every round, prints the summary and exits 0 when the job completes', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('flora', sha256, { clientsPerRound: 2, minClients: 2 }));
      const states = [tempDir('state'), tempDir('state')];
      const results = await Promise.all(
        shards.map(async (data, i) =>
          join(['--coordinator', `${api.url}/api/jobs/${jobId}`, '--token', await api.token(jobId), '--data', data, '--model', modelDir, '--backend', 'wasm', '--state', states[i]!]),
        ),
      );
      for (const r of results) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr, r.stderr).toMatch(/backend: wasm/);
        expect(r.stderr, r.stderr).toMatch(/enrolled in job \S+ as client \S+ \(flora, rank 2\)/);
        expect(r.stderr, r.stderr).toMatch(new RegExp(`job ${jobId}: completed; 2 rounds committed`));
        expect(r.stderr, r.stderr).toMatch(/trained 2 rounds, 2 updates accepted, 0 refused/);
      }
      expect((await api.job(jobId)).status).toBe('completed');
      // Joining again with the stored enrolment (no token): the job has ended, exit 0.
      const again = await join(['--coordinator', api.url, '--data', shards[0]!, '--model', modelDir, '--backend', 'wasm', '--state', states[0]!]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr, again.stderr).toMatch(new RegExp(`job ${jobId}: ended \\(job '${jobId}' has ended \\(completed\\)\\)`));
    } finally {
      await coordinator.stop();
    }
    // Three child processes each load tsx and TensorFlow.js (and a training worker): 10-25 s here
    // when the machine is quiet, more when other suites run alongside.
  }, 180_000);

  it('exits 1 with FL_ERR_BACKEND when the forced backend is not usable (tfjs-node is not installed here)', async () => {
    const r = await join(['--coordinator', 'http://127.0.0.1:9', '--job', 'j1', '--token', 'x'.repeat(43), '--data', shards[0]!, '--model', modelDir, '--backend', 'tensorflow', '--state', tempDir('state')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/FL_ERR_BACKEND: backend 'tensorflow' was requested but is not usable/);
  });

  it('exits 2 naming the option when the first join has no token', async () => {
    const r = await join(['--coordinator', 'http://127.0.0.1:9', '--job', 'j1', '--data', shards[0]!, '--model', modelDir, '--backend', 'wasm', '--state', tempDir('state')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/FL_ERR_INVALID_ARGUMENT: the state folder .* holds no enrolment for job 'j1': pass the enrolment token \(--token\)/);
  });
});
