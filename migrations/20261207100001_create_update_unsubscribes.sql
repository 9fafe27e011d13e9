-- Unsubscribes through an update's own links (its footer, its List-Unsubscribe header),
-- counted per update for its report. A count only: who left through which update is not kept.
CREATE TABLE update_unsubscribes (
    update_id uuid PRIMARY KEY REFERENCES updates (id) ON DELETE CASCADE,
    unsubscribes bigint NOT NULL CHECK (unsubscribes >= 0)
);
