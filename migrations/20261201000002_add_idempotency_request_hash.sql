-- What a keyed request asked for (SHA-256 of its method, path and body), so the same key with
-- a different request is refused instead of silently answered with the first one's result.
ALTER TABLE idempotency_keys ADD COLUMN request_hash bytea;
