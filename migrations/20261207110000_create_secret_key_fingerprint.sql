-- One row: a fingerprint of the `security.secret_key` this database was first used with (an
-- HMAC of a fixed label under the key, never the key), so that a restore or a move that starts
-- the service with another key is told at once instead of breaking every link already mailed.
CREATE TABLE secret_key_fingerprint (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{16}$'),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
