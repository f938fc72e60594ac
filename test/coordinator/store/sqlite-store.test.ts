import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../../coordinator/store/sqlite-store.js';
import { openStore } from '../../../coordinator/store/open-store.js';
import { MIGRATIONS } from '../../../coordinator/store/migrations.js';
import { expectCode, spec, storeContract } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'fedlora-store-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract({
  name: 'SQLite',
  fresh: () => join(dir, `store-${n++}.db`),
  migrations: MIGRATIONS,
  failingSql: 'CREATE TABLE half (x INTEGER); SELECT * FROM no_such_table;',
  raw: async (location, sql) => {
    const db = new Database(location, { readonly: true });
    try {
      return db.prepare(sql).all() as Array<Record<string, unknown>>;
    } finally {
      db.close();
    }
  },
});

describe('SQLite store specifics', () => {
  it('a file path opens SQLite in WAL with full fsync and foreign keys', async () => {
    const path = join(dir, 'wal.db');
    const store = await openStore(path);
    try {
      expect(store).toBeInstanceOf(SqliteStore);
      expect(store.kind).toBe('sqlite');
      expect(store.location).toBe(path);
      const raw = (store as unknown as { db: Database.Database }).db;
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('synchronous', { simple: true })).toBe(2);
      expect(raw.pragma('foreign_keys', { simple: true })).toBe(1);
    } finally {
      await store.close();
    }
    expect(store.isOpen()).toBe(false);
    await store.close();
  });

  it('migration 2 numbers the tokens of a version-1 database per job in creation order and copies the index to their clients', async () => {
    const path = join(dir, 'v1.db');
    const v1 = await openStore(path, { migrations: MIGRATIONS.slice(0, 1) });
    const job = await v1.createJob(spec, 1);
    const other = await v1.createJob(spec, 1);
    await v1.close();
    const raw = new Database(path);
    const insert = raw.prepare('INSERT INTO enrolment_tokens (token_hash, job_id, created_at, expires_at) VALUES (?, ?, 0, 10000)');
    for (const [hash, jobId] of [['h0', job.id], ['o0', other.id], ['h1', job.id], ['h2', job.id]]) insert.run(hash, jobId);
    raw.prepare("INSERT INTO clients (id, job_id, sign_public_key, enrolment_index, backend, created_at, last_seen_at) VALUES ('cl_a', ?, 'k', 0, '{}', 0, 0)").run(job.id);
    raw.prepare("UPDATE enrolment_tokens SET used_at = 0, client_id = 'cl_a' WHERE token_hash = 'h2'").run();
    raw.close();
    const store = await openStore(path);
    try {
      const check = new Database(path, { readonly: true });
      const rows = check.prepare('SELECT token_hash, token_index FROM enrolment_tokens ORDER BY token_hash').all() as Array<{ token_hash: string; token_index: number }>;
      check.close();
      expect(rows.map((r) => [r.token_hash, r.token_index])).toEqual([['h0', 0], ['h1', 1], ['h2', 2], ['o0', 0]]);
      expect(await store.getClient('cl_a')).toMatchObject({ enrolmentIndex: 0, tokenIndex: 2 });
    } finally {
      await store.close();
    }
  });

  it('refuses a file that is not a database with FL_ERR_STORE naming it', async () => {
    const path = join(dir, 'not-a.db');
    writeFileSync(path, 'hello, this is not sqlite'.repeat(100));
    await expectCode(openStore(path), 'FL_ERR_STORE', /not-a\.db/);
    await expectCode(openStore(''), 'FL_ERR_STORE', /location is empty/);
  });
});
