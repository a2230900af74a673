-- Access keys without a unique index on their keyed hash: lookups by hash
-- are served from memory, never by SQL, and the index cost a random page
-- write for every key created (the server refuses duplicate hashes when it
-- loads the keys).
ALTER TABLE access_keys DROP CONSTRAINT IF EXISTS access_keys_hash_key;
