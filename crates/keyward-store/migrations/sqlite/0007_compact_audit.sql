-- The audit log, compact: each entry names its key id, address, action,
-- target, class, decision and code by the id of a row of audit_strings
-- (they repeat from entry to entry), holds its own hash but not the
-- previous one (the entry before has it), and has no time index (time and
-- sequence rise together: a time bound is found by bisecting the sequence).
-- About 80 bytes an entry instead of 180. Entries keep their hashes: the
-- chain is unchanged.
CREATE TABLE audit_strings (
    id     INTEGER PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL UNIQUE
) STRICT;

INSERT INTO audit_strings (value)
    SELECT key_id FROM audit_log UNION SELECT ip FROM audit_log UNION SELECT action FROM audit_log
    UNION SELECT target FROM audit_log UNION SELECT class FROM audit_log UNION SELECT decision FROM audit_log
    UNION SELECT code FROM audit_log;

CREATE TABLE audit_entries (
    seq         INTEGER PRIMARY KEY NOT NULL,
    time_ms     INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    key_id      INTEGER NOT NULL,
    ip          INTEGER NOT NULL,
    action      INTEGER NOT NULL,
    target      INTEGER NOT NULL,
    class       INTEGER NOT NULL,
    decision    INTEGER NOT NULL,
    code        INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    hash        BLOB NOT NULL
) STRICT;

INSERT INTO audit_entries (seq, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, hash)
    SELECT a.seq, a.time_ms, a.request_id,
        (SELECT id FROM audit_strings WHERE value = a.key_id), (SELECT id FROM audit_strings WHERE value = a.ip),
        (SELECT id FROM audit_strings WHERE value = a.action), (SELECT id FROM audit_strings WHERE value = a.target),
        (SELECT id FROM audit_strings WHERE value = a.class), (SELECT id FROM audit_strings WHERE value = a.decision),
        (SELECT id FROM audit_strings WHERE value = a.code), a.detail, a.hash
    FROM audit_log a ORDER BY a.seq;

-- The last entry a prune removed (archived): the stored log starts after it.
CREATE TABLE audit_base (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL
) STRICT;

DROP INDEX audit_log_time;
DROP TABLE audit_log;
