-- The link checker's results (issue 29, item 4): one row per URL, the last time staff had it
-- fetched, kept so that one URL is fetched at most once an hour however often staff ask.
CREATE TABLE link_checks (
    url text PRIMARY KEY CHECK (length(url) <= 2048),
    checked_at timestamptz NOT NULL DEFAULT now(),
    -- the final HTTP status after redirects; NULL when no answer came
    status integer,
    -- why the link failed, in words; NULL when it answered 2xx
    error text
);
