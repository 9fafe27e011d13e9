-- What goes out is what was approved. Every change of an update's content (subject, preheader,
-- intro, news items and their order, template, from, reply-to) or audience (lists) makes a new
-- version, kept here append-only with who made it and which fields changed. Previews, test
-- mails, approvals and sends each name the version they use.
ALTER TABLE updates
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- the member of staff who made the current version (NULL: an API token, the command line,
    -- a digest schedule); an approver must be someone else
    ADD COLUMN changed_by uuid REFERENCES staff (id) ON DELETE SET NULL,
    -- the approval: which version, for which lists and how many recipients it was given
    ADD COLUMN approved_version integer,
    ADD COLUMN approved_lists text[],
    ADD COLUMN approved_recipients bigint,
    ADD COLUMN approved_at timestamptz,
    -- the member of staff who last scheduled, sent, resumed or approved it (NULL: a token,
    -- the command line, a digest schedule): the one who asks when the scheduler holds it for
    -- approval, so they cannot approve it themselves
    ADD COLUMN scheduled_by uuid REFERENCES staff (id) ON DELETE SET NULL,
    -- when approval was last asked for: an approval names the request it answers
    ADD COLUMN approval_requested_at timestamptz,
    -- the version that went out, fixed when it starts, and the mail templates it goes out with
    -- (the newest mail_template_versions id when it was confirmed or approved, else when it
    -- started; 0: only the shipped ones existed; NULL: not fixed yet)
    ADD COLUMN sent_version integer,
    ADD COLUMN templates_as_of bigint,
    -- whether staff chose the archive setting; if not, an update is listed only when one of
    -- its lists is public (decided when it starts)
    ADD COLUMN archive_chosen boolean NOT NULL DEFAULT false;

-- Updates already sent keep the archive setting they went out with.
UPDATE updates SET archive_chosen = true, sent_version = 1,
                   templates_as_of = (SELECT coalesce(max(id), 0) FROM mail_template_versions)
WHERE started_at IS NOT NULL;

CREATE TABLE update_versions (
    update_id uuid NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    version integer NOT NULL CHECK (version >= 1),
    -- subject, preheader, intro, template, from, reply_to, lists (slugs), news_items
    content jsonb NOT NULL,
    -- the fields that differ from the version before (empty for the first)
    changed text[] NOT NULL DEFAULT '{}',
    actor text NOT NULL,
    -- the member of staff, if one (kept as history, like the audit log's: no foreign key)
    staff_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (update_id, version)
);

-- Versions are never changed (removed only with their update).
CREATE FUNCTION update_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update versions are append-only';
END $$;
CREATE TRIGGER update_versions_append_only BEFORE UPDATE ON update_versions
    FOR EACH STATEMENT EXECUTE FUNCTION update_versions_append_only();

-- The first version of every update that exists.
INSERT INTO update_versions (update_id, version, content, actor, created_at)
SELECT u.id, 1,
       jsonb_build_object(
           'subject', u.subject, 'preheader', u.preheader, 'intro', u.intro_markdown,
           'template', u.template, 'from', u.from_override, 'reply_to', u.reply_to_override,
           'lists', ARRAY(SELECT l.slug FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                          WHERE ul.update_id = u.id ORDER BY l.slug),
           'news_items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'title', n.title, 'summary', n.summary, 'source', n.source, 'url', n.url,
                   'published_on', n.published_on, 'topic', n.topic, 'news_id', n.news_id)
                   ORDER BY n.position)
               FROM news_items n WHERE n.update_id = u.id), '[]'::jsonb)),
       'before versions', u.created_at
FROM updates u;

-- Limits counted on the audit log (test mails an hour per member of staff or token).
CREATE INDEX audit_log_by_actor_action ON audit_log (actor, action, at);
