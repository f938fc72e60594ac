/**
 * Opening the embedded SQLite database: WAL journal (readers never block the writer), foreign
 * keys on, a busy timeout, synchronous=FULL (a committed round survives power loss, not only a
 * killed process; commits are one per round plus enrolments, so the fsync is cheap), and the
 * schema migrations applied in one transaction. This folder is the only importer of better-sqlite3.
 */
import Database from 'better-sqlite3';
import { FedloraError } from '../../shared/errors.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export type SqliteDatabase = Database.Database;

export interface OpenOptions {
  /** ms a statement waits for a lock held by another connection. @default 5000 */
  busyTimeoutMs?: number;
  /** Migrations to apply (tests pass extra ones). @default MIGRATIONS */
  migrations?: readonly Migration[];
}

/**
 * Opens (creating if needed) the database at `path` and brings its schema up to date.
 * @throws FL_ERR_STORE when the file cannot be opened, is not a fedlora database, or is newer than this code
 */
export function openDatabase(path: string, options: OpenOptions = {}): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    db = new Database(path);
  } catch (e) {
    throw new FedloraError('FL_ERR_STORE', `cannot open database ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal' && path !== ':memory:') {
      throw new FedloraError('FL_ERR_STORE', `database ${path}: could not switch to WAL journal (got ${String(mode)})`, { path });
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, options.migrations ?? MIGRATIONS, path);
    return db;
  } catch (e) {
    db.close();
    if (e instanceof FedloraError) throw e;
    throw new FedloraError('FL_ERR_STORE', `database ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
}

/** Applies the migrations not yet recorded, in version order, in one transaction. */
export function migrate(db: SqliteDatabase, migrations: readonly Migration[], path = 'database'): number[] {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (m.version !== i + 1) throw new FedloraError('FL_ERR_STORE', `migrations must be numbered 1, 2, 3... without gaps; found ${m.version} at position ${i + 1}`);
  });
  const applied: number[] = [];
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
    const newest = Math.max(0, ...done);
    if (newest > sorted.length) {
      throw new FedloraError('FL_ERR_STORE', `${path} has schema version ${newest}, newer than this fedlora (${sorted.length}); upgrade fedlora`, { path });
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of sorted) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
      applied.push(m.version);
    }
  })();
  return applied;
}
