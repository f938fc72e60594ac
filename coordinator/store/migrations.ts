/**
 * The store's schema as numbered migrations. Each runs once, in order, inside the transaction that
 * opens the store; `schema_migrations` records which ran. Never edit a migration that has shipped:
 * add the next number.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, enrolment tokens, clients, rounds, updates, global states, ledger, nonces',
    sql: `
      CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        spec        TEXT NOT NULL,                -- JobSpec JSON, defaults filled in
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        reason      TEXT,                         -- why it failed
        round       INTEGER NOT NULL DEFAULT 0,   -- committed rounds = index of the next round
        attempt     INTEGER NOT NULL DEFAULT -1,  -- last attempt started of the next round (-1: none)
        layout      TEXT,                         -- adapted modules JSON, once known
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE TABLE enrolment_tokens (
        token_hash  TEXT PRIMARY KEY,             -- SHA-256 hex of the token; the token itself is never stored
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        client_id   TEXT
      );
      CREATE TABLE clients (
        id               TEXT PRIMARY KEY,
        job_id           TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        sign_public_key  TEXT NOT NULL,           -- Ed25519, base64
        box_public_key   TEXT,
        enrolment_index  INTEGER NOT NULL,        -- 0-based order of enrolment in the job
        backend          TEXT NOT NULL,           -- BackendInfo JSON of the last hello
        agent            TEXT,
        created_at       INTEGER NOT NULL,
        last_seen_at     INTEGER NOT NULL,
        UNIQUE (job_id, sign_public_key),
        UNIQUE (job_id, enrolment_index)
      );
      CREATE TABLE rounds (
        job_id        TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round         INTEGER NOT NULL,
        attempts      INTEGER NOT NULL,
        participants  TEXT NOT NULL,              -- JSON array of client ids
        metrics       TEXT NOT NULL,              -- JSON object of numbers
        started_at    INTEGER NOT NULL,
        committed_at  INTEGER NOT NULL,
        accepted      INTEGER NOT NULL,
        refused       INTEGER NOT NULL,
        PRIMARY KEY (job_id, round)
      );
      CREATE TABLE updates (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round           INTEGER NOT NULL,
        attempt         INTEGER NOT NULL,
        client_id       TEXT,                     -- null when the sender could not be identified
        status          TEXT NOT NULL CHECK (status IN ('accepted', 'refused')),
        reason_code     TEXT,
        reason_message  TEXT,
        bytes           INTEGER NOT NULL,
        examples        INTEGER,
        received_at     INTEGER NOT NULL
      );
      CREATE INDEX updates_by_round ON updates (job_id, round);
      CREATE TABLE global_states (
        job_id   TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        round    INTEGER NOT NULL,                -- the state after this many committed rounds
        meta     TEXT NOT NULL,                   -- JSON the engine needs besides tensors
        payload  BLOB NOT NULL,                   -- safetensors
        PRIMARY KEY (job_id, round)
      );
      CREATE TABLE ledger (
        job_id      TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        state       TEXT NOT NULL,                -- privacy ledger JSON (privacy/ledger.ts)
        updated_at  INTEGER NOT NULL
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
  {
    version: 2,
    name: 'token index: the creation index of each enrolment token in its job, kept on the client it enrolled',
    // A deterministic per-client key (unlike the random client id and the enrolment order, which
    // follows connection order): the engine derives seeds, ranks and aggregation order from it.
    sql: `
      ALTER TABLE enrolment_tokens ADD COLUMN token_index INTEGER;
      UPDATE enrolment_tokens SET token_index =
        (SELECT COUNT(*) FROM enrolment_tokens t WHERE t.job_id = enrolment_tokens.job_id AND t.rowid < enrolment_tokens.rowid);
      ALTER TABLE clients ADD COLUMN token_index INTEGER;
      UPDATE clients SET token_index =
        COALESCE((SELECT t.token_index FROM enrolment_tokens t WHERE t.client_id = clients.id), enrolment_index);
    `,
  },
];
