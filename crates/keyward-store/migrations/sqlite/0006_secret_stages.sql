-- Staged rotation: a version can be written as pending (nothing reads it
-- until it is promoted), and the version current before the last change
-- stays recorded as previous, the target of a one-step rollback. Version
-- numbers now follow latest_version: with a version pending, the highest
-- number written is no longer the current one.

ALTER TABLE secrets ADD COLUMN latest_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN pending_version INTEGER;
ALTER TABLE secrets ADD COLUMN previous_version INTEGER;

UPDATE secrets SET latest_version = current_version;
UPDATE secrets SET previous_version = (
    SELECT MAX(v.version) FROM secret_versions v
    WHERE v.path = secrets.path AND v.version < secrets.current_version AND v.destroyed = 0
);
