/**
 * A training worker's error reaches the agent thread as the error it would have seen in-process:
 * the worker sends the reason (without the code prefix) and the code in a field of its own, so the
 * rebuilt FedloraError's message carries the prefix exactly once (client/agent/training-worker.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isFedloraError } from '../../../shared/errors.js';
import { WorkerTrainer } from '../../../client/agent/worker-trainer.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('training worker errors', () => {
  it('a model folder without config.json: the code once, the reason naming the file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedlora-worker-err-'));
    const err = await WorkerTrainer.start({ modelDir: dir, dataFile: join(dir, 'data.jsonl'), backend: 'wasm' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isFedloraError(err)).toBe(true);
    if (!isFedloraError(err)) return;
    expect(err.message).toBe(`${err.code}: ${err.reason}`);
    expect(err.reason).not.toMatch(/FL_ERR_/);
    expect(err.reason).toContain('config.json');
  });
});
