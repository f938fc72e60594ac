import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore, redactLocation } from '../../../coordinator/store/postgres-store.js';
import { openStore } from '../../../coordinator/store/open-store.js';
import { POSTGRES_MIGRATIONS } from '../../../coordinator/store/postgres-migrations.js';
import { expectCode, storeContract } from './store-contract.js';
import { requirePostgres, TEST_POSTGRES, TestSchemas } from './postgres-server.js';

const schemas = new TestSchemas();
beforeAll(requirePostgres);
afterAll(() => schemas.dropAll());

storeContract({
  name: 'PostgreSQL',
  fresh: () => schemas.fresh(),
  migrations: POSTGRES_MIGRATIONS,
  failingSql: 'CREATE TABLE half (x INTEGER); SELECT * FROM no_such_table;',
  raw: (location, sql) => schemas.raw(location, sql),
});

describe('PostgreSQL store specifics', () => {
  it('postgres:// and postgresql:// URLs open PostgreSQL; the location shown hides the password', async () => {
    const at = schemas.fresh();
    for (const location of [at, at.replace(/^postgres:/, 'postgresql:')]) {
      const store = await openStore(location);
      try {
        expect(store).toBeInstanceOf(PostgresStore);
        expect(store.kind).toBe('postgres');
        expect(store.location).not.toContain(':fedlora@');
      } finally {
        await store.close();
      }
      expect(store.isOpen()).toBe(false);
    }
    expect(redactLocation('postgres://u:secret@h:5432/d')).toBe('postgres://u:***@h:5432/d');
  });

  it('an unreachable server or a bad schema name is FL_ERR_STORE naming the location, not the password', async () => {
    const url = new URL(TEST_POSTGRES);
    url.port = '1';
    await expectCode(openStore(url.toString()), 'FL_ERR_STORE', /127\.0\.0\.1:1|localhost:1|ECONNREFUSED/);
    await expectCode(openStore(`${TEST_POSTGRES}?schema=Bad-Name`), 'FL_ERR_STORE', /lower-case/);
    const wrong = new URL(TEST_POSTGRES);
    wrong.password = 'not-the-password';
    try {
      await openStore(wrong.toString());
      expect.unreachable('a wrong password opened the store');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('FL_ERR_STORE');
      expect((e as Error).message).not.toContain('not-the-password');
    }
  });
});
