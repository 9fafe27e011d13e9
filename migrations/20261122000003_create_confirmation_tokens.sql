-- Double opt-in links. Only the SHA-256 of a token is stored.
CREATE TABLE confirmation_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX confirmation_tokens_by_subscriber ON confirmation_tokens (subscriber_id);
