-- Namespaces of platform keys (keys that authenticate to a platform's API
-- through the verify API, never to keyward's own). The `keyward` namespace
-- is implicit and never stored.
CREATE TABLE namespaces (
    name        TEXT PRIMARY KEY NOT NULL,
    prefix      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
) STRICT;
