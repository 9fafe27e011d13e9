-- One-time codes that let the first admin be created in the browser (/admin/setup). `serve`
-- makes one at each start while no staff account exists and prints it; only its SHA-256 is
-- kept. All are deleted when the first account is created.
CREATE TABLE setup_codes (
    hash bytea PRIMARY KEY CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
