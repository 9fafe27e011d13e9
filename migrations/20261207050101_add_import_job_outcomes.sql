-- Every row of an import is counted once: imported (new), added to lists (someone already
-- here who joined a list), already there, duplicate in the file, refused (by column, in
-- refused_by), suppressed. The refused rows are kept with their cells (and the file's header)
-- to be downloaded, fixed and imported again. lists_ticked: whether `lists` were chosen for
-- everyone (true) or are the default lists, for rows that name none (false).
ALTER TABLE import_jobs
    ADD COLUMN added_to_lists integer NOT NULL DEFAULT 0,
    ADD COLUMN already_there integer NOT NULL DEFAULT 0,
    ADD COLUMN duplicates integer NOT NULL DEFAULT 0,
    ADD COLUMN suppressed integer NOT NULL DEFAULT 0,
    ADD COLUMN refused_by jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN header text[] NOT NULL DEFAULT '{}',
    ADD COLUMN refused_rows jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN lists_ticked boolean NOT NULL DEFAULT true;
