-- List hygiene (`[hygiene]`): a subscriber inactive for long is asked once per inactive spell
-- whether they still want the updates; one who does not answer becomes `lapsed` (not mailed,
-- not suppressed; confirmed again after any activity).
ALTER TABLE subscribers DROP CONSTRAINT subscribers_status_check;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_status_check
    CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained', 'lapsed'));

CREATE TABLE repermission_requests (
    subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    -- the day their inactive spell began (their last activity, or their confirmation): one
    -- question per spell, whoever runs the housekeeping and however often
    inactive_since date NOT NULL,
    asked_at timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    lapsed_at timestamptz,
    PRIMARY KEY (subscriber_id, inactive_since)
);
CREATE INDEX repermission_requests_open ON repermission_requests (asked_at)
    WHERE answered_at IS NULL AND lapsed_at IS NULL;
