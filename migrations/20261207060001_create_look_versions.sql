-- The look of the mails (issue 27): logos uploaded for it, and every saved version of the look
-- (colour, footer, social links, which logo). Both append-only.

-- A logo by its content hash, the key of its public URL (/brand/logo-<sha256>.<ext>). Kept once
-- uploaded: mails already sent point at it.
CREATE TABLE brand_logos (
    sha256 bytea PRIMARY KEY CHECK (length(sha256) = 32),
    content_type text NOT NULL
        CHECK (content_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp')),
    bytes bytea NOT NULL CHECK (length(bytes) <= 524288),
    width integer NOT NULL CHECK (width > 0),
    height integer NOT NULL CHECK (height > 0),
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);

-- The current look is the highest version; none: the default look. Its id comes from the
-- sequence of mail_template_versions, so that one number, an update's templates_as_of, fixes
-- both the templates and the look it goes out with (see mail_design_mark below).
CREATE TABLE look_versions (
    id bigint PRIMARY KEY DEFAULT nextval(pg_get_serial_sequence('mail_template_versions', 'id')),
    version integer NOT NULL UNIQUE CHECK (version > 0),
    colour text NOT NULL CHECK (colour ~ '^#[0-9a-f]{6}$'),
    footer text NOT NULL,
    -- [{"label": "...", "url": "https://..."}]
    social jsonb NOT NULL DEFAULT '[]',
    logo_sha256 bytea REFERENCES brand_logos (sha256),
    -- who: a staff address, "API token <id>" or "command line"
    saved_by text NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION look_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'look versions and logos are append-only';
END $$;
CREATE TRIGGER look_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON look_versions
    FOR EACH STATEMENT EXECUTE FUNCTION look_versions_append_only();
CREATE TRIGGER brand_logos_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON brand_logos
    FOR EACH STATEMENT EXECUTE FUNCTION look_versions_append_only();

-- The newest id of the mail design (templates and look) saved so far: what an update
-- released now goes out with (updates.templates_as_of; 0: only the shipped design).
CREATE FUNCTION mail_design_mark() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT greatest((SELECT coalesce(max(id), 0) FROM mail_template_versions),
                    (SELECT coalesce(max(id), 0) FROM look_versions))
$$;
