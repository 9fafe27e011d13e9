-- The purge of sign-ups never confirmed reads only pending ones, by age (it scanned every
-- subscriber before).
CREATE INDEX subscribers_pending_by_age ON subscribers (created_at) WHERE status = 'pending';
