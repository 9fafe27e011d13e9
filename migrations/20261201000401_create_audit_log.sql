-- What staff did: sign-ins, sends, schedules, cancels, exports, erasures, imports, template and
-- staff changes. Append-only: rows can be added, never changed or removed.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    -- who: a staff address, "API token <id>" or "command line"
    actor text NOT NULL,
    staff_id uuid,
    action text NOT NULL,
    -- what it was done to (an update id, a subscriber id, an address of staff), if anything
    subject text,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_newest_first ON audit_log (at DESC, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
