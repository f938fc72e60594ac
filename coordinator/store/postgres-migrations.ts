/**
 * The PostgreSQL store's schema as numbered migrations, applied by postgres-store.ts in one
 * transaction under an advisory lock (two nodes starting together apply each once) and recorded
 * in `schema_migrations`, like SQLite's (migrations.ts). Version 1 is SQLite's schema after its
 * migration 2, in PostgreSQL types: BIGINT for epoch milliseconds, BYTEA for payloads, identity
 * columns where SQLite orders by rowid. Never edit a migration that has shipped: add the next number.
 */
import type { Migration } from './migrations.js';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, enrolment tokens, clients, rounds, updates, global states, ledger, nonces (SQLite schema 2)',
    sql: `
      CREATE TABLE jobs (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- creation order (SQLite's rowid)
        id          TEXT PRIMARY KEY,
        spec        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        reason      TEXT,
        round       INTEGER NOT NULL DEFAULT 0,
        attempt     INTEGER NOT NULL DEFAULT -1,
        layout      TEXT,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
      );
      CREATE TABLE enrolment_tokens (
        token_hash   TEXT PRIMARY KEY,
        job_id       TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        created_at   BIGINT NOT NULL,
        expires_at   BIGINT NOT NULL,
        used_at      BIGINT,
        client_id    TEXT,
        token_index  INTEGER NOT NULL,
        UNIQUE (job_id, token_index)
      );
      CREATE TABLE clients (
        id               TEXT PRIMARY KEY,
        job_id           TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        sign_public_key  TEXT NOT NULL,
        box_public_key   TEXT,
        enrolment_index  INTEGER NOT NULL,
        token_index      INTEGER,
        backend          TEXT NOT NULL,
        agent            TEXT,
        created_at       BIGINT NOT NULL,
        last_seen_at     BIGINT NOT NULL,
        UNIQUE (job_id, sign_public_key),
        UNIQUE (job_id, enrolment_index)
      );
      CREATE TABLE rounds (
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round         INTEGER NOT NULL,
        attempts      INTEGER NOT NULL,
        participants  TEXT NOT NULL,
        metrics       TEXT NOT NULL,
        started_at    BIGINT NOT NULL,
        committed_at  BIGINT NOT NULL,
        accepted      INTEGER NOT NULL,
        refused       INTEGER NOT NULL,
        PRIMARY KEY (job_id, round)
      );
      CREATE TABLE updates (
        id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round           INTEGER NOT NULL,
        attempt         INTEGER NOT NULL,
        client_id       TEXT,
        status          TEXT NOT NULL CHECK (status IN ('accepted', 'refused')),
        reason_code     TEXT,
        reason_message  TEXT,
        bytes           BIGINT NOT NULL,
        examples        INTEGER,
        received_at     BIGINT NOT NULL
      );
      CREATE INDEX updates_by_round ON updates (job_id, round);
      CREATE TABLE global_states (
        job_id   TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round    INTEGER NOT NULL,
        meta     TEXT NOT NULL,
        payload  BYTEA NOT NULL,
        PRIMARY KEY (job_id, round)
      );
      CREATE TABLE ledger (
        job_id      TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        state       TEXT NOT NULL,
        updated_at  BIGINT NOT NULL
      );
      CREATE TABLE used_nonces (
        job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        nonce      TEXT NOT NULL,
        client_id  TEXT NOT NULL,
        round      INTEGER NOT NULL,
        PRIMARY KEY (job_id, nonce)
      );
    `,
  },
];
