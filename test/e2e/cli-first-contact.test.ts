/**
 * What a new user meets first with the real `fedlora` command (bin/fedlora.mjs, child processes):
 * - a client pointed at a down coordinator gives up after --connect-timeout with FL_ERR_CONNECTION;
 * - backend noise (TensorFlow.js' "install our node backend", Dawn's Vulkan warning, each backend
 *   passed over) stays quiet unless --verbose, and one line says which backend was chosen;
 * - a wrong enrolment token exits with the same code and FL_ERR_ENROLMENT whether it is too short
 *   or well formed.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { mlpFixture, mlpJob, startCoordinator, tempDir } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(1, 24));
});

function fedlora(args: string[]): Promise<{ code: number | null; stderr: string; seconds: number }> {
  const started = performance.now();
  const env = { ...process.env };
  delete env.FEDLORA_VERBOSE;
  const child = spawn(process.execPath, ['bin/fedlora.mjs', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr, seconds: (performance.now() - started) / 1000 })));
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const NOISE = /Vulkan|looks like you are running TensorFlow\.js|tfjs-node|not used:/;

describe('fedlora on first contact', () => {
  it('client join gives up on a down coordinator after --connect-timeout, with FL_ERR_CONNECTION and no backend noise', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const r = await fedlora(['client', 'join', '--coordinator', url, '--token', 'x'.repeat(43), '--data', shards[0]!, '--model', modelDir, '--state', tempDir('state'), '--connect-timeout', '2']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`FL_ERR_CONNECTION: could not reach the coordinator at ${url.replaceAll('.', '\\.')} for 2 s: gave up`));
    // loading tsx, the model, the data and a training worker takes a few seconds; the wait itself is 2 s
    expect(r.seconds).toBeLessThan(60);
    expect(r.stderr).not.toMatch(NOISE);
    expect(r.stderr.match(/^backend: /gm), r.stderr).toHaveLength(1);
  }, 90_000);

  it('fedlora train says which backend it chose in one line; --verbose also shows the ones passed over', async () => {
    const args = ['train', '--model', modelDir, '--data', shards[0]!, '--epochs', '1', '--max-steps', '1'];
    const quiet = await fedlora(args);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).not.toMatch(NOISE);
    expect(quiet.stderr.match(/^backend: /gm), quiet.stderr).toHaveLength(1);
    const verbose = await fedlora([...args, '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(verbose.stderr).toMatch(/^backend: tensorflow not used: not available: .*tfjs-node/m);
  }, 120_000);

  it('a wrong enrolment token exits 1 with FL_ERR_ENROLMENT, too short or well formed', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      await api.createJob(mlpJob('fedavg', sha256, { clientsPerRound: 1, minClients: 1 }));
      const codes = [];
      for (const token of ['short', 'A'.repeat(43)]) {
        const r = await fedlora(['client', 'join', '--coordinator', api.url, '--token', token, '--data', shards[0]!, '--model', modelDir, '--state', tempDir('state'), '--backend', 'wasm']);
        expect(r.stderr).toMatch(/FL_ERR_ENROLMENT: the coordinator refused the join: unknown enrolment token/);
        codes.push(r.code);
      }
      expect(codes).toEqual([1, 1]);
    } finally {
      await coordinator.stop();
    }
  }, 120_000);
});
