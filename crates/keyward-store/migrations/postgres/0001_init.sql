-- keyward schema, PostgreSQL: the same tables and columns as the SQLite
-- schema after all its migrations (a snapshot copies rows between the two
-- by column name), plus the exchange nonces several nodes share. Secret
-- values exist here only as envelope ciphertext; access keys only as keyed
-- hashes. Text keys that are listed in order use the "C" collation, so they
-- sort bytewise, as SQLite sorts them.

-- Named values; `seal` holds the seal record (JSON).
CREATE TABLE meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- One row per secret: its type, rotation period and which version reads
-- get (current), which one waits (pending), which one a rollback returns
-- to (previous) and the highest number written (latest).
CREATE TABLE secrets (
    path               TEXT COLLATE "C" PRIMARY KEY,
    kind               TEXT,
    current_version    BIGINT NOT NULL,
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    rotation_period_s  BIGINT,
    latest_version     BIGINT NOT NULL DEFAULT 0,
    pending_version    BIGINT,
    previous_version   BIGINT
);

-- Every version of a secret, as envelope ciphertext (NULL once destroyed).
CREATE TABLE secret_versions (
    path        TEXT COLLATE "C" NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    deleted_ms  BIGINT,
    destroyed   BOOLEAN NOT NULL DEFAULT FALSE,
    ciphertext  BYTEA,
    PRIMARY KEY (path, version)
);

-- Access keys: the keyed hash of each key (never the key), its policy and
-- state, covered by a row MAC.
CREATE TABLE access_keys (
    id              TEXT COLLATE "C" PRIMARY KEY,
    hash            BYTEA NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    owner           TEXT,
    namespace       TEXT NOT NULL,
    policy          TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    mac             BYTEA NOT NULL,
    uses_remaining  BIGINT,
    last_used_ms    BIGINT,
    last_used_ip    TEXT
);

-- Namespaces of platform keys (keys that authenticate to a platform's API
-- through the verify API, never to keyward's own). The `keyward` namespace
-- is implicit and never stored.
CREATE TABLE namespaces (
    name        TEXT COLLATE "C" PRIMARY KEY,
    prefix      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- Cumulative order notional per key per UTC day (micro-units of the quote
-- currency), for the per-day cap of order guards.
CREATE TABLE order_usage (
    key_id  TEXT COLLATE "C" NOT NULL,
    day     BIGINT NOT NULL,
    used    BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

-- The audit log: a hash chain (each entry's hash covers the previous one's)
-- and signed checkpoints. Entries hold key ids and reason codes, never keys,
-- signatures or secret values. Nodes append to one chain under an advisory
-- lock.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    ip          TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    class       TEXT NOT NULL,
    decision    TEXT NOT NULL,
    code        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time_ms);

-- Signed checkpoints of the chain: hash and signature are hex text.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    time_ms    BIGINT NOT NULL,
    signature  TEXT NOT NULL
);

-- The key ledger's head: one MAC'd, database-wide revision over every
-- access-key row and order-usage counter, so that writing back an earlier
-- copy of one row (a revoked key, a spent counter) no longer matches it.
-- Its digest is kept in parts, so a write replaces only the parts it moves.
CREATE TABLE key_ledger (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    rev    BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    mac    BYTEA NOT NULL
);

CREATE TABLE key_ledger_parts (
    part   BIGINT PRIMARY KEY,
    bytes  BYTEA NOT NULL
);

-- The last nonce any node took per exchange account (scope), so the nodes
-- sharing an account never send the same or a lower one. Not in snapshots.
CREATE TABLE exchange_nonces (
    scope  TEXT PRIMARY KEY,
    last   BIGINT NOT NULL
);
