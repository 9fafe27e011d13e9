-- Every saved version of a mail template (issue 11). The current version of a name is its
-- highest; a name without one uses the shipped template. A version with no parts stands for the
-- shipped template (a revert to the default). A revert to an earlier version copies its parts
-- and names it in reverted_from. Append-only: versions are added, never changed or removed.
CREATE TABLE mail_template_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    subject text,
    body_text text,
    body_html text,
    reverted_from integer,
    -- who: a staff address, "API token <id>" or "command line"
    saved_by text NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version),
    CHECK ((subject IS NULL) = (body_text IS NULL) AND (body_text IS NULL) = (body_html IS NULL))
);

CREATE FUNCTION mail_template_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mail template versions are append-only';
END $$;
CREATE TRIGGER mail_template_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mail_template_versions
    FOR EACH STATEMENT EXECUTE FUNCTION mail_template_versions_append_only();
