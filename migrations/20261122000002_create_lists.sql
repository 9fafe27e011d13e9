-- Mailing lists (the national list, local alliances) and who is on which.
CREATE TABLE lists (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    is_public boolean NOT NULL DEFAULT true,
    -- a sign-up that names no list joins the default lists
    is_default boolean NOT NULL DEFAULT false,
    position integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber_id, list_id)
);
CREATE INDEX subscriptions_by_list ON subscriptions (list_id, status);

-- Default content: the first user's national list. Rename or replace it in the admin area.
INSERT INTO lists (slug, name, description, is_public, is_default)
VALUES ('us-icc-updates', 'US & ICC Updates',
        'News on the United States and the International Criminal Court: Congress, the administration, the Court and the Assembly of States Parties.',
        true, true);
