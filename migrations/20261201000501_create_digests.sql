-- Digest schedules: at each occurrence (computed in the schedule's time zone) the scheduler
-- builds an update from the approved news items added since the schedule's previous digest.
CREATE TABLE digests (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    lists text[] NOT NULL,
    -- only items of these topics; empty: every topic
    topics text[] NOT NULL DEFAULT '{}',
    -- Markdown with {{name}}, {{date}} and {{count}}
    intro text NOT NULL DEFAULT '',
    template text NOT NULL DEFAULT 'update',
    frequency text NOT NULL CHECK (frequency IN ('weekly', 'monthly')),
    -- ISO weekdays (1 = Monday) for weekly, the day of the month for monthly
    weekdays smallint[] NOT NULL DEFAULT '{}',
    day_of_month smallint,
    at_time time NOT NULL,
    time_zone text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('send', 'review')),
    active boolean NOT NULL DEFAULT true,
    next_at timestamptz NOT NULL,
    -- approved items up to this time went into an earlier digest (NULL: none yet)
    covered_until timestamptz,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX digests_due ON digests (next_at) WHERE active;

-- One row per occurrence, written when it fires: the unique key makes a second firing impossible.
CREATE TABLE digest_runs (
    id bigserial PRIMARY KEY,
    digest_id uuid NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    due_at timestamptz NOT NULL,
    fired_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL CHECK (outcome IN ('building', 'sent', 'review', 'held', 'skipped', 'failed')),
    reason text,
    news_ids uuid[] NOT NULL DEFAULT '{}',
    update_id uuid REFERENCES updates (id) ON DELETE SET NULL,
    UNIQUE (digest_id, due_at)
);

-- Staff may leave an update out of the public archive.
ALTER TABLE updates ADD COLUMN in_archive boolean NOT NULL DEFAULT true;
DROP INDEX updates_archive;
CREATE INDEX updates_archive ON updates (started_at DESC, id DESC)
    WHERE slug IS NOT NULL AND in_archive AND status IN ('sending', 'sent');
