-- Local alliances: a list may belong to a US state (or DC or a territory) and send a welcome mail.
ALTER TABLE lists
    ADD COLUMN us_state text CHECK (us_state ~ '^[A-Z]{2}$'),
    ADD COLUMN welcome boolean NOT NULL DEFAULT false;

-- A subscriber's state and chosen topics (NULL: every topic).
ALTER TABLE subscribers
    ADD COLUMN us_state text CHECK (us_state ~ '^[A-Z]{2}$'),
    ADD COLUMN topics text[];

-- Erased addresses: only the SHA-256 of the normalized address stays, so they are never
-- re-added by an import or an API call; a new double opt-in by the person removes the entry.
CREATE TABLE suppressions (
    email_hash bytea PRIMARY KEY CHECK (length(email_hash) = 32),
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- An erased person's delivery rows stay, anonymous, so update counts remain true.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscriber_id_fkey;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL;

-- Default content: a sample local alliance list. Replace it with your own.
INSERT INTO lists (slug, name, description, is_public, us_state, position)
VALUES ('new-york-alliance', 'New York Alliance', 'News from the ICC alliance in New York State.', true, 'NY', 10);
