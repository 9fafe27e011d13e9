-- Feeds staff follow: the worker polls each (conditional GET), and stores new entries as news
-- desk items, once each (by the entry's GUID, else its link).
CREATE TABLE feeds (
    id uuid PRIMARY KEY,
    url text NOT NULL UNIQUE,
    -- the feed's own title, from its last good fetch
    title text NOT NULL DEFAULT '',
    topic text,
    -- entries go on the desk approved at once (a trusted source), else awaiting review
    approve boolean NOT NULL DEFAULT false,
    active boolean NOT NULL DEFAULT true,
    etag text,
    last_modified text,
    next_poll_at timestamptz NOT NULL DEFAULT now(),
    -- a poll in progress: the worker that claimed it, until when
    poll_claim uuid,
    poll_claimed_until timestamptz,
    last_polled_at timestamptz,
    last_success_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    items_added bigint NOT NULL DEFAULT 0,
    added_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feeds_due ON feeds (next_poll_at) WHERE active;

-- News desk items wait for review (feed entries) or are approved (staff's own, trusted feeds).
ALTER TABLE news ADD COLUMN status text NOT NULL DEFAULT 'approved'
    CHECK (status IN ('awaiting_review', 'approved'));
ALTER TABLE news ADD COLUMN approved_at timestamptz;
UPDATE news SET approved_at = added_at;
ALTER TABLE news ADD COLUMN feed_id uuid REFERENCES feeds (id) ON DELETE SET NULL;
-- the entry's GUID, else its link: one item per entry of a feed
ALTER TABLE news ADD COLUMN feed_entry text;
CREATE UNIQUE INDEX news_by_feed_entry ON news (feed_id, feed_entry) WHERE feed_id IS NOT NULL;
CREATE INDEX news_by_approved_at ON news (approved_at) WHERE status = 'approved';
