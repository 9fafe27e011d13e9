-- Tokens and event ids of the providers' webhook calls already taken (Mailgun's signature
-- token, SNS's MessageId, SendGrid's signature, each provider's event ids), as SHA-256: a call
-- or event seen before changes nothing. Written in the transaction that records the call's
-- events; kept at least twice webhooks.max_age_seconds (housekeeping prunes older ones).
CREATE TABLE webhook_ids_seen (
    source text NOT NULL,
    id_hash bytea NOT NULL CHECK (length(id_hash) = 32),
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id_hash)
);
CREATE INDEX webhook_ids_seen_by_time ON webhook_ids_seen (seen_at);
