-- The news desk: news items as records of their own, kept after they are sent. An update
-- keeps its own copy of each item (news_items) with a link back to the desk record.
CREATE TABLE news (
    id uuid PRIMARY KEY,
    title text NOT NULL,
    summary text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    url text,
    published_on date,
    topic text,
    -- who added it: a staff e-mail, "API token <id>" or "command line"
    added_by text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX news_by_added_at ON news (added_at DESC);

ALTER TABLE news_items ADD COLUMN news_id uuid REFERENCES news (id) ON DELETE SET NULL;
CREATE INDEX news_items_by_news ON news_items (news_id) WHERE news_id IS NOT NULL;
