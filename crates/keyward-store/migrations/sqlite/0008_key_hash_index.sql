-- Access keys without a unique index on their keyed hash: lookups by hash
-- are served from memory, never by SQL, and the index cost a random page
-- write for every key created (the server refuses duplicate hashes when it
-- loads the keys). Same columns, same rowids.
CREATE TABLE access_keys_new (
    id              TEXT PRIMARY KEY NOT NULL,
    hash            BLOB NOT NULL,
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
INSERT INTO access_keys_new (rowid, id, hash, name, owner, namespace, policy, state, created_ms, mac, uses_remaining, last_used_ms, last_used_ip)
    SELECT rowid, id, hash, name, owner, namespace, policy, state, created_ms, mac, uses_remaining, last_used_ms, last_used_ip
    FROM access_keys;
DROP TABLE access_keys;
ALTER TABLE access_keys_new RENAME TO access_keys;
