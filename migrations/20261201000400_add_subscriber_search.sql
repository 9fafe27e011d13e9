-- Staff search subscribers by part of the address or name, case-insensitive, at a million rows:
-- a trigram index answers "contained" searches of three or more characters, the pattern
-- indexes answer shorter prefixes, and (created_at, id) serves the keyset pages, newest first.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX subscribers_search_trgm ON subscribers
    USING gin ((email_normalized || ' ' || lower(coalesce(name, ''))) gin_trgm_ops);
CREATE INDEX subscribers_email_prefix ON subscribers (email_normalized text_pattern_ops);
CREATE INDEX subscribers_name_prefix ON subscribers (lower(name) text_pattern_ops);
CREATE INDEX subscribers_newest_first ON subscribers (created_at DESC, id DESC);
-- Filters on status or state walk only their own rows, newest first, even when few match.
CREATE INDEX subscribers_by_status ON subscribers (status, created_at DESC, id DESC);
CREATE INDEX subscribers_by_state ON subscribers (us_state, created_at DESC, id DESC)
    WHERE us_state IS NOT NULL;
