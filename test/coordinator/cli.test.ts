import { afterEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register, configFromFlags } from '../../coordinator/cli.js';
import { Store } from '../../coordinator/store/store.js';
import { createJob, currentAdapter } from '../../coordinator/jobs.js';
import { JobRunner } from '../../coordinator/engine/job-runner.js';
import { CoordinatorMetrics } from '../../coordinator/metrics.js';
import { createLogger } from '../../coordinator/logger.js';
import { generateKeyPairs } from '../../privacy/keys.js';
import { InlineOpener } from '../../coordinator/engine/update-opener.js';
import { readPeftAdapterDir } from '../../shared/peft.js';
import { isFedloraError } from '../../shared/errors.js';
import { minimalJob } from './helpers.js';

let dir = '';
afterEach(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function program(): Command {
  const p = new Command('fedlora').exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  register(p);
  return p;
}

describe('fedlora export', () => {
  it('writes the current global adapter as a PEFT directory that reads back equal', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedlora-export-'));
    const db = join(dir, 'fedlora.db');
    const store = Store.open(db);
    const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }];
    const job = createJob(store, { ...minimalJob, model: { ...minimalJob.model, modules } });
    // Start the job through the engine, as the first client would.
    const keys = generateKeyPairs();
    new JobRunner(job.id, { store, keys, opener: new InlineOpener(keys.box.secretKey), metrics: new CoordinatorMetrics({ defaultMetrics: false }), logger: createLogger('silent'), startGraceMs: 0 }).ensureStarted(modules);
    const expected = currentAdapter(store, job.id);
    store.close();

    const out = join(dir, 'adapter');
    await program().parseAsync(['node', 'fedlora', 'export', '--db', db, '--job', job.id, '--out', out]);
    const read = await readPeftAdapterDir(out);
    // a decoder's adapter is a causal LM's for PEFT
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).task_type).toBe('CAUSAL_LM');
    // fedsb folds R into B on export (B' = B R); R0 = 0 in the random init, so B' = 0 and A is kept.
    const m = modules[0]!.path;
    expect([...read.factors.get(m)!.A!]).toEqual([...expected.factors.get(m)!.A!]);
    expect(read.factors.get(m)!.B!.every((v) => v === 0)).toBe(true);
    // --rank compresses flora adapters only, and must be a positive integer.
    await expect(program().parseAsync(['node', 'fedlora', 'export', '--db', db, '--job', job.id, '--out', out, '--rank', '2'])).rejects.toSatisfy(
      (e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') && /only a flora adapter/.test((e as Error).message),
    );
    await expect(program().parseAsync(['node', 'fedlora', 'export', '--db', db, '--job', job.id, '--out', out, '--rank', 'x'])).rejects.toSatisfy(
      (e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') && /--rank/.test((e as Error).message),
    );
  });

  it("an mlp classifier's adapter has task_type null (a plain torch model, as fedlora train writes it), not CAUSAL_LM", async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedlora-export-'));
    const db = join(dir, 'fedlora.db');
    const store = Store.open(db);
    const modules = [
      { path: 'layers.0', outFeatures: 6, inFeatures: 64 },
      { path: 'head', outFeatures: 10, inFeatures: 6 },
    ];
    const job = createJob(store, { ...minimalJob, model: { ...minimalJob.model, targetModules: ['layers.0', 'head'], modules } });
    const keys = generateKeyPairs();
    new JobRunner(job.id, { store, keys, opener: new InlineOpener(keys.box.secretKey), metrics: new CoordinatorMetrics({ defaultMetrics: false }), logger: createLogger('silent'), startGraceMs: 0 }).ensureStarted(modules);
    store.close();
    const out = join(dir, 'adapter');
    await program().parseAsync(['node', 'fedlora', 'export', '--db', db, '--job', job.id, '--out', out]);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { task_type: unknown; target_modules: unknown };
    expect(config.task_type).toBeNull();
    expect(config.target_modules).toEqual(expect.arrayContaining(['layers.0', 'head']));
  });

  it('refuses a database that does not exist and a job that does not', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedlora-export-'));
    await expect(program().parseAsync(['node', 'fedlora', 'export', '--db', join(dir, 'none.db'), '--job', 'j', '--out', dir])).rejects.toMatchObject({ code: 'FL_ERR_INVALID_ARGUMENT' });
    const db = join(dir, 'fedlora.db');
    Store.open(db).close();
    await expect(program().parseAsync(['node', 'fedlora', 'export', '--db', db, '--job', 'job_nope', '--out', dir])).rejects.toMatchObject({ code: 'FL_ERR_NOT_FOUND' });
  });
});

describe('fedlora coordinator start: configuration', () => {
  it('merges a JSON config file under the flags and checks the port', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedlora-config-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ db: 'a.db', port: 9000, http: { rateLimit: 5 } }));
    expect(await configFromFlags({ config: file, port: '0', host: '0.0.0.0' })).toEqual({ db: 'a.db', port: 0, host: '0.0.0.0', http: { rateLimit: 5 } });
    await expect(configFromFlags({ port: '70000' })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') && /--port/.test((e as Error).message));
    writeFileSync(file, '[1, 2]');
    await expect(configFromFlags({ config: file })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_CONFIG'));
  });

  it('refuses a config with an unknown or bad field before opening anything', async () => {
    const { Coordinator } = await import('../../coordinator/coordinator.js');
    await expect(Coordinator.start({ port: 0, adminToken: 'short' })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_CONFIG') && /adminToken/.test((e as Error).message));
    await expect(Coordinator.start({ prot: 1 } as never)).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_CONFIG') && /prot/.test((e as Error).message));
  });
});

describe('coordinator admin token', () => {
  it('comes from FEDLORA_ADMIN_TOKEN, else is generated; either one opens /api', async () => {
    const { Coordinator } = await import('../../coordinator/coordinator.js');
    dir = mkdtempSync(join(tmpdir(), 'fedlora-token-'));
    const saved = process.env.FEDLORA_ADMIN_TOKEN;
    try {
      process.env.FEDLORA_ADMIN_TOKEN = 'from-the-environment-0123';
      const a = await Coordinator.start({ db: join(dir, 'a.db'), port: 0, logLevel: 'silent' });
      expect(a.adminToken).toBe('from-the-environment-0123');
      expect(a.adminTokenGenerated).toBe(false);
      expect((await fetch(`${a.url}/api/jobs`, { headers: { authorization: 'Bearer from-the-environment-0123' } })).status).toBe(200);
      await a.stop();
      delete process.env.FEDLORA_ADMIN_TOKEN;
      const b = await Coordinator.start({ db: join(dir, 'b.db'), port: 0, logLevel: 'silent' });
      expect(b.adminTokenGenerated).toBe(true);
      expect(b.adminToken.length).toBeGreaterThanOrEqual(32);
      expect((await fetch(`${b.url}/api/jobs`, { headers: { authorization: `Bearer ${b.adminToken}` } })).status).toBe(200);
      expect((await fetch(`${b.url}/api/jobs`, { headers: { authorization: 'Bearer from-the-environment-0123' } })).status).toBe(401);
      await b.stop();
    } finally {
      if (saved === undefined) delete process.env.FEDLORA_ADMIN_TOKEN;
      else process.env.FEDLORA_ADMIN_TOKEN = saved;
    }
  });
});

describe('fedlora coordinator start --db', () => {
  it('refuses a PostgreSQL URL with a coded error naming db (not yet supported), and takes a file path', async () => {
    for (const url of ['postgres://fedlora:secret@127.0.0.1/fedlora', 'postgresql://h/db']) {
      await expect(configFromFlags({ db: url })).rejects.toSatisfy((e: unknown) => isFedloraError(e, 'FL_ERR_INVALID_CONFIG') && /PostgreSQL URL is not supported/.test(String(e)));
    }
    expect((await configFromFlags({ db: 'postgres-notes.db' })).db).toBe('postgres-notes.db');
  });
});
