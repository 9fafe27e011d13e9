-- Bounces and complaints that arrive after the relay took the mail: delivery status
-- notifications (RFC 3464), ARF reports (RFC 5965), auto-replies (RFC 3834) and provider events,
-- each kept with its raw text (size-limited, for staff). A report that names no delivery is kept
-- too (matched = false): the "unmatched" list.
CREATE TABLE bounce_reports (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL CHECK (source IN ('smtp', 'imap', 'ses', 'postmark', 'sendgrid', 'mailgun')),
    kind text NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'auto_reply', 'unknown')),
    -- the enhanced status code (RFC 3463), e.g. 5.1.1, when the report has one
    status_code text,
    -- a line for staff: the diagnostic, the feedback type, or why it matched nothing
    detail text NOT NULL DEFAULT '',
    delivery_id bigint REFERENCES deliveries (id) ON DELETE SET NULL,
    update_id uuid REFERENCES updates (id) ON DELETE SET NULL,
    subscriber_id uuid REFERENCES subscribers (id) ON DELETE SET NULL,
    matched boolean NOT NULL,
    raw text NOT NULL,
    raw_truncated boolean NOT NULL DEFAULT false,
    -- SHA-256 of the whole report as received: a report delivered twice (a provider's retry, a
    -- mailbox message seen again) is recorded once
    fingerprint bytea NOT NULL UNIQUE CHECK (length(fingerprint) = 32)
);
CREATE INDEX bounce_reports_by_update ON bounce_reports (update_id, id) WHERE update_id IS NOT NULL;
CREATE INDEX bounce_reports_by_subscriber ON bounce_reports (subscriber_id, received_at)
    WHERE subscriber_id IS NOT NULL;
CREATE INDEX bounce_reports_unmatched ON bounce_reports (id) WHERE NOT matched;

-- What a later report said about a delivered mail (the strongest: complaint, hard, soft).
ALTER TABLE deliveries ADD COLUMN report text CHECK (report IN ('soft', 'hard', 'complaint'));

-- Bounces and complaints go into the consent log, from the report that caused them.
ALTER TABLE consent_events DROP CONSTRAINT consent_events_kind_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_kind_check
    CHECK (kind IN ('signup', 'confirm', 'unsubscribe', 'resubscribe', 'preferences', 'bounce', 'complaint'));
ALTER TABLE consent_events DROP CONSTRAINT consent_events_source_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_source_check
    CHECK (source IN ('form', 'api', 'link', 'one_click', 'admin', 'import', 'report'));
