-- The update's address in the public archive (/archive/{slug}): made from its subject and the
-- date it started sending, set once when it starts, never changed after.
ALTER TABLE updates ADD COLUMN slug text;
CREATE UNIQUE INDEX updates_by_slug ON updates (slug) WHERE slug IS NOT NULL;
CREATE INDEX updates_archive ON updates (started_at DESC, id DESC)
    WHERE slug IS NOT NULL AND status IN ('sending', 'sent');
