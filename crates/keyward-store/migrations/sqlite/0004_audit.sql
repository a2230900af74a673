-- The audit log: a hash chain (each entry's hash covers the previous one's)
-- and signed checkpoints. Entries hold key ids and reason codes, never keys,
-- signatures or secret values.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    time_ms     INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    ip          TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    class       TEXT NOT NULL,
    decision    TEXT NOT NULL,
    code        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
CREATE INDEX audit_log_time ON audit_log (time_ms);

CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL,
    time_ms    INTEGER NOT NULL,
    signature  TEXT NOT NULL
) STRICT;
