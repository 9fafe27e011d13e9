-- Imports run in the background, one row per job: any web process picks up a job that is
-- queued, or running without a heartbeat for a minute (its process stopped), and carries on
-- after the rows already done. The file is kept only until the job ends.
CREATE TABLE import_jobs (
    id uuid PRIMARY KEY,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    mode text NOT NULL CHECK (mode IN ('confirmed', 'opt-in')),
    source text NOT NULL,
    lists text[] NOT NULL,
    file bytea,
    -- data records in the file, records handled so far, and the outcome
    rows integer NOT NULL DEFAULT 0,
    processed integer NOT NULL DEFAULT 0,
    imported integer NOT NULL DEFAULT 0,
    refused integer NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '[]',
    failure text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX import_jobs_pending ON import_jobs (created_at) WHERE status IN ('queued', 'running');
