-- The audit log, compact (as in SQLite): strings by id, no previous hash,
-- no time index. Entries keep their hashes: the chain is unchanged.
CREATE TABLE audit_strings (
    id     BIGSERIAL PRIMARY KEY,
    value  TEXT NOT NULL UNIQUE
);

INSERT INTO audit_strings (value)
    SELECT key_id FROM audit_log UNION SELECT ip FROM audit_log UNION SELECT action FROM audit_log
    UNION SELECT target FROM audit_log UNION SELECT class FROM audit_log UNION SELECT decision FROM audit_log
    UNION SELECT code FROM audit_log;

CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    key_id      BIGINT NOT NULL,
    ip          BIGINT NOT NULL,
    action      BIGINT NOT NULL,
    target      BIGINT NOT NULL,
    class       BIGINT NOT NULL,
    decision    BIGINT NOT NULL,
    code        BIGINT NOT NULL,
    detail      TEXT NOT NULL,
    hash        BYTEA NOT NULL
);

INSERT INTO audit_entries (seq, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, hash)
    SELECT a.seq, a.time_ms, a.request_id, k.id, i.id, ac.id, t.id, c.id, d.id, co.id, a.detail, a.hash
    FROM audit_log a
    JOIN audit_strings k ON k.value = a.key_id JOIN audit_strings i ON i.value = a.ip
    JOIN audit_strings ac ON ac.value = a.action JOIN audit_strings t ON t.value = a.target
    JOIN audit_strings c ON c.value = a.class JOIN audit_strings d ON d.value = a.decision
    JOIN audit_strings co ON co.value = a.code;

-- The last entry a prune removed (archived): the stored log starts after it.
CREATE TABLE audit_base (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);

DROP TABLE audit_log;
