-- A news item a feed brought and staff deleted stays deleted: its entry's key (the GUID, else
-- the link, as `news.feed_entry`) is remembered per feed, and the poller skips that entry.
-- Staff may still add the same story by hand.
CREATE TABLE feed_entries_deleted (
    feed_id uuid NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    entry_key text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feed_id, entry_key)
);
