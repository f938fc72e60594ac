/**
 * The connection pool of a node's cluster work (leases, node registry, shared secrets, the
 * socket.io adapter's LISTEN/NOTIFY), on the same PostgreSQL database as the store. The location
 * is the store's (`postgres://user:password@host:port/database[?schema=name]`,
 * coordinator/store/postgres-store.ts): with `?schema=`, the cluster tables live in that schema and
 * the notification channels carry its name, so two clusters on one database (tests) never hear
 * each other (LISTEN/NOTIFY channels belong to the database, not to a schema).
 */
import pg from 'pg';
import { FedloraError } from '../../shared/errors.js';

export interface ClusterPool {
  readonly pool: pg.Pool;
  /** The schema the cluster tables live in, or null for the connection's default (public). */
  readonly schema: string | null;
  /** The prefix of this cluster's notification channels: `fedlora` or `fedlora:<schema>`. */
  readonly channelPrefix: string;
}

/** Whether a `--db` location is a PostgreSQL URL (else it is a SQLite path). */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Opens a pool (nothing connects until the first query).
 * @param poolSize connections: the adapter holds one for LISTEN, the lease and registry timers use the rest. @default 4
 * @throws FL_ERR_STORE when the location is no URL or its schema name is not a plain identifier
 */
export function openClusterPool(location: string, poolSize = 4): ClusterPool {
  let url: URL;
  try {
    url = new URL(location);
  } catch (e) {
    throw new FedloraError('FL_ERR_STORE', 'the cluster database location is not a URL', undefined, { cause: e });
  }
  const schema = url.searchParams.get('schema');
  url.searchParams.delete('schema');
  if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new FedloraError('FL_ERR_STORE', `schema '${schema}' in the database location must be lower-case letters, digits and _, starting with a letter or _`);
  }
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: poolSize,
    ...(schema === null ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle connection's error (the server restarted) must not crash the node: the pool drops it.
  pool.on('error', () => undefined);
  return { pool, schema, channelPrefix: schema === null ? 'fedlora' : `fedlora:${schema}` };
}
