/**
 * The tables the nodes of a cluster share besides the store's (coordinator/store/postgres-migrations.ts):
 *   cluster_secrets         the admin token and the coordinator key pair (shared-secrets.ts)
 *   job_leases              which node drives which job, until when, under which epoch (job-lease.ts)
 *   cluster_nodes           each node's heartbeat: URL, start, last contact, jobs, clients (node-registry.ts)
 *   update_receipts         one row per counted update (job, round, attempt, client): counted once (update-receipts.ts)
 *   socket_io_attachments   the socket.io adapter's payloads over NOTIFY's 8000 bytes (message-bus.ts)
 * Created with IF NOT EXISTS in one transaction under an advisory lock, so nodes starting together
 * create them once. Times that decide ownership (lease expiry, last contact) use the database's
 * clock, never a node's, so nodes with skewed clocks still agree.
 */
import type pg from 'pg';

/** Advisory lock key held while creating the cluster tables ('fclu' in ASCII). */
const CLUSTER_SCHEMA_LOCK = 0x66636c75;

export const ATTACHMENTS_TABLE = 'socket_io_attachments';

const TABLES = `
  CREATE TABLE IF NOT EXISTS cluster_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS job_leases (
    job_id       TEXT PRIMARY KEY,
    node_id      TEXT,
    epoch        BIGINT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL
  );
  CREATE TABLE IF NOT EXISTS cluster_nodes (
    node_id     TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    jobs        TEXT NOT NULL DEFAULT '[]',
    clients     INTEGER NOT NULL DEFAULT 0,
    stopped_at  TIMESTAMPTZ
  );
  CREATE TABLE IF NOT EXISTS update_receipts (
    job_id       TEXT NOT NULL,
    round        INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    client_id    TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, round, attempt, client_id)
  );
  CREATE TABLE IF NOT EXISTS ${ATTACHMENTS_TABLE} (
    id          BIGSERIAL UNIQUE,
    created_at  TIMESTAMPTZ DEFAULT now(),
    payload     BYTEA
  );
`;

/** Creates the schema (when named) and the cluster tables, once, whoever starts first. */
export async function ensureClusterTables(pool: pg.Pool, schema: string | null): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [CLUSTER_SCHEMA_LOCK]);
    if (schema !== null) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await c.query(TABLES);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}
