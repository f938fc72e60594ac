/**
 * The PostgreSQL server the store tests use: FEDLORA_TEST_POSTGRES, or the role and database that
 * tools/test-prerequisites.sh creates. Each test gets a fresh schema of its own (`?schema=`), so
 * test files running in parallel never see each other's rows; the schemas are dropped at the end.
 * An unreachable server fails the tests with the command that starts it: they never skip.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_POSTGRES = process.env.FEDLORA_TEST_POSTGRES ?? 'postgres://fedlora:fedlora@127.0.0.1:5432/fedlora_test';

const START_HINT =
  'start it with: sudo bash tools/test-prerequisites.sh (installs Debian\'s postgresql, starts the cluster with ' +
  "'pg_ctlcluster 15 main start' and creates the role and database), or point FEDLORA_TEST_POSTGRES at a server";

/** Connects once to check the server is there; throws with the command to start it when it is not. */
export async function requirePostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (e) {
    throw new Error(`the PostgreSQL test server ${TEST_POSTGRES.replace(/:[^:@/]*@/, ':***@')} is not reachable (${(e as Error).message}); ${START_HINT}`, { cause: e });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Fresh schemas for one test file, and raw SQL on them for the checks a Store does not expose. */
export class TestSchemas {
  private readonly made: string[] = [];

  /** A location with a schema name no one has used (the store creates it). */
  fresh(): string {
    const schema = `fedlora_t_${randomBytes(6).toString('hex')}`;
    this.made.push(schema);
    const url = new URL(TEST_POSTGRES);
    url.searchParams.set('schema', schema);
    return url.toString();
  }

  /** Runs one statement in the location's schema. */
  async raw(location: string, sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> {
    const schema = new URL(location).searchParams.get('schema')!;
    const client = new pg.Client({ connectionString: TEST_POSTGRES, options: `-c search_path=${schema}` });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as Array<Record<string, unknown>>;
    } finally {
      await client.end();
    }
  }

  async dropAll(): Promise<void> {
    if (this.made.length === 0) return;
    const client = new pg.Client({ connectionString: TEST_POSTGRES });
    await client.connect();
    try {
      for (const s of this.made.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    } finally {
      await client.end();
    }
  }
}
