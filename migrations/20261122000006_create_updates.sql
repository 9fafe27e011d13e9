-- Updates (campaigns): a subject, an intro, ordered news items, target lists.
CREATE TABLE updates (
    id uuid PRIMARY KEY,
    subject text NOT NULL,
    preheader text NOT NULL DEFAULT '',
    intro_markdown text NOT NULL DEFAULT '',
    template text NOT NULL DEFAULT 'update',
    from_override text,
    reply_to_override text,
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'paused', 'cancelled')),
    scheduled_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    -- why the update is paused (staff, circuit breaker, missed schedule)
    status_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX updates_due ON updates (scheduled_at) WHERE status = 'scheduled';

CREATE TABLE update_lists (
    update_id uuid NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    list_id uuid NOT NULL REFERENCES lists (id) ON DELETE RESTRICT,
    PRIMARY KEY (update_id, list_id)
);

CREATE TABLE news_items (
    update_id uuid NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    position integer NOT NULL,
    title text NOT NULL,
    summary text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    url text,
    published_on date,
    topic text,
    PRIMARY KEY (update_id, position)
);

ALTER TABLE deliveries
    ADD CONSTRAINT deliveries_update_fk FOREIGN KEY (update_id) REFERENCES updates (id) ON DELETE CASCADE;
CREATE INDEX deliveries_by_update ON deliveries (update_id, status) WHERE update_id IS NOT NULL;

-- A test send of an update: one mail, outside the update's ledger.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('confirmation', 'update', 'welcome', 'test'));
