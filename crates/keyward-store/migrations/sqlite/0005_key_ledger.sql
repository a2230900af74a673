-- The key ledger's head: one MAC'd, database-wide revision over every
-- access-key row and order-usage counter, so that writing back an earlier
-- copy of one row (a revoked key, a spent counter) no longer matches it.
-- Its digest is kept in parts, so a write replaces only the parts it moves.
CREATE TABLE key_ledger (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    rev     INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    mac     BLOB NOT NULL
) STRICT;

CREATE TABLE key_ledger_parts (
    part    INTEGER PRIMARY KEY NOT NULL,
    bytes   BLOB NOT NULL
) STRICT;
