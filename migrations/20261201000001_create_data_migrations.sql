-- Changes to stored data that need the application's own code (e.g. IDNA for addresses), run
-- once by `store::migrate` after the SQL migrations; each leaves its report here.
CREATE TABLE data_migrations (
    name text PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now(),
    report jsonb NOT NULL
);
