-- The last time a mail was known delivered to this person after their soft bounces (a
-- provider's `delivered` event); soft bounce reports received before it no longer count.
-- (Our relay's 250 for a later mail is read from `deliveries.sent_at`.)
ALTER TABLE subscribers ADD COLUMN soft_bounces_cleared_at timestamptz;
