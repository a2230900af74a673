-- keyward schema, SQLite. Secret values exist here only as envelope
-- ciphertext; access keys only as keyed hashes.

CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE secrets (
    path               TEXT PRIMARY KEY NOT NULL,
    kind               TEXT,
    current_version    INTEGER NOT NULL,
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    rotation_period_s  INTEGER
) STRICT;

CREATE TABLE secret_versions (
    path        TEXT NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    deleted_ms  INTEGER,
    destroyed   INTEGER NOT NULL DEFAULT 0,
    ciphertext  BLOB,
    PRIMARY KEY (path, version)
) STRICT;

CREATE TABLE access_keys (
    id              TEXT PRIMARY KEY NOT NULL,
    hash            BLOB NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    owner           TEXT,
    namespace       TEXT NOT NULL,
    policy          TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    mac             BLOB NOT NULL,
    uses_remaining  INTEGER,
    last_used_ms    INTEGER,
    last_used_ip    TEXT
) STRICT;
