-- The dashboard reads the consent log by time (sign-ups and unsubscribes per day).
CREATE INDEX consent_events_by_time ON consent_events (occurred_at);
