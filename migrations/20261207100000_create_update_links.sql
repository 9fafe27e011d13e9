-- Aggregate link counts (issue 29): each link of an update that went out, under a code of its
-- own (the same for every recipient), and its clicks per day. Nothing here names a person.
CREATE TABLE update_links (
    -- 12 random bytes, base64url: /l/{code}
    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{16}$'),
    update_id uuid NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    -- the link as written in the update: where /l/{code} redirects, and nowhere else
    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 4096),
    -- its order of appearance in the update (the report lists links in this order)
    position integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (update_id, url)
);

CREATE TABLE link_clicks (
    code text NOT NULL REFERENCES update_links (code) ON DELETE CASCADE,
    -- the day of the clicks, UTC
    day date NOT NULL,
    clicks bigint NOT NULL CHECK (clicks >= 0),
    PRIMARY KEY (code, day)
);
