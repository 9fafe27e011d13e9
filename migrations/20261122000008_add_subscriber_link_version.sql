-- Unsubscribe and manage links are signed with security.secret_key over (id, link_version);
-- raising link_version revokes every link issued before. Hard bounces are counted.
ALTER TABLE subscribers
    ADD COLUMN link_version integer NOT NULL DEFAULT 1,
    ADD COLUMN hard_bounces integer NOT NULL DEFAULT 0;
