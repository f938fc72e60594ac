/**
 * `openStore`: picks the Store implementation by the location (docs/architecture.md, "The store").
 */
import { FedloraError } from '../../shared/errors.js';
import type { Migration } from './migrations.js';
import type { Store } from './store-api.js';

export interface OpenStoreOptions {
  /** SQLite: ms a statement waits for another connection's lock. @default 5000 */
  busyTimeoutMs?: number;
  /** Migrations to apply instead of the backend's own list (tests pass extra ones). */
  migrations?: readonly Migration[];
}

/** Whether a store location names a PostgreSQL server rather than a SQLite file. */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Opens the store at `location`, creating and migrating its schema as needed:
 * `postgres://` or `postgresql://` URLs go to PostgreSQL (postgres-store.ts), anything else is a
 * SQLite file path (sqlite-store.ts; `:memory:` too). Each driver is loaded only when used.
 * @throws FL_ERR_STORE when the database cannot be opened or migrated
 */
export async function openStore(location: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (location.length === 0) throw new FedloraError('FL_ERR_STORE', 'the store location is empty: give a SQLite file path or a postgres:// URL');
  if (isPostgresLocation(location)) {
    const { PostgresStore } = await import('./postgres-store.js');
    return PostgresStore.open(location, options.migrations === undefined ? {} : { migrations: options.migrations });
  }
  const { SqliteStore } = await import('./sqlite-store.js');
  return SqliteStore.open(location, options);
}
