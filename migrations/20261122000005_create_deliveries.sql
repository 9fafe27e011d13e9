-- The delivery ledger and durable mail queue: one row per mail to one person.
-- Workers claim due rows with FOR UPDATE SKIP LOCKED; a claimed row is 'sending' with
-- next_attempt_at set to its lease expiry, after which any worker may claim it again.
CREATE TABLE deliveries (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('confirmation', 'update', 'welcome')),
    update_id uuid,
    subscriber_id uuid REFERENCES subscribers (id) ON DELETE CASCADE,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'skipped')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_reply text,
    -- the relay may have taken the mail although we saw no reply (a retry may duplicate it)
    ambiguous boolean NOT NULL DEFAULT false,
    message_id text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('queued', 'deferred', 'sending');
CREATE UNIQUE INDEX deliveries_one_per_update_and_subscriber ON deliveries (update_id, subscriber_id)
    WHERE update_id IS NOT NULL;
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id);
