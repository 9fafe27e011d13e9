-- One index instead of two on deliveries' subscriber and update: (subscriber_id, update_id),
-- unique, serves what deliveries_by_subscriber served (a person's mail, the foreign key's
-- ON DELETE) and enforces what deliveries_one_per_update_and_subscriber enforced (one row per
-- update and person; rows without an update never conflict, since NULLs are distinct). The
-- claim and the outcome rewrite every index of a row (status is indexed, so no update is
-- HOT): one index fewer is less work for each mail. `ON CONFLICT (update_id, subscriber_id)
-- WHERE update_id IS NOT NULL` infers this index as it did the partial one.
CREATE UNIQUE INDEX deliveries_by_subscriber_and_update ON deliveries (subscriber_id, update_id);
DROP INDEX deliveries_one_per_update_and_subscriber;
DROP INDEX deliveries_by_subscriber;
