-- Delivery rows of an update are created in chunks, in subscriber-id order, so the first mail
-- goes out while the rest are still being written. `recipients_after` is the last subscriber a
-- row was created for; the update cannot finish before `recipients_complete`. Updates started
-- before this change already have all their rows.
ALTER TABLE updates
    ADD COLUMN recipients_after uuid,
    ADD COLUMN recipients_complete boolean NOT NULL DEFAULT true;
