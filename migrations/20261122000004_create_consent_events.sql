-- The consent log: every sign-up, confirmation and (later) unsubscribe, with the wording shown.
CREATE TABLE consent_events (
    id bigserial PRIMARY KEY,
    subscriber_id uuid REFERENCES subscribers (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('signup', 'confirm', 'unsubscribe', 'resubscribe', 'preferences')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    ip inet,
    user_agent text,
    source text NOT NULL CHECK (source IN ('form', 'api', 'link', 'one_click', 'admin', 'import')),
    consent_text text,
    consent_version text,
    lists text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX consent_events_by_subscriber ON consent_events (subscriber_id, occurred_at);
