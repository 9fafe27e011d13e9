-- Bearer tokens for /api/v1. Only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

-- Answers remembered per Idempotency-Key, so a retried create or send does it once.
CREATE TABLE idempotency_keys (
    api_token_id uuid NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    key text NOT NULL,
    scope text NOT NULL,
    response_status smallint NOT NULL,
    response_body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_token_id, key, scope)
);
