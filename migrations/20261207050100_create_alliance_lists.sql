-- A state's alliance lists, written once: the open public lists that belong to that state. A
-- sign-up that names a state joins them (store::lists::resolve_public), and so does an import
-- row that names a state and no list (store::imports).
CREATE VIEW alliance_lists AS
    SELECT id, slug, us_state FROM lists
    WHERE us_state IS NOT NULL AND is_public AND archived_at IS NULL;
