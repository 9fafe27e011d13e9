-- Unsubscribes through an update's own links (its footer, its List-Unsubscribe header), for its
-- report: set on the person's delivery of that update, once, when that delivery was sent and
-- the unsubscribe changed something. The report counts the flags; a person counts once per
-- update however often they leave and come back.
ALTER TABLE deliveries ADD COLUMN unsubscribed_through boolean NOT NULL DEFAULT false;
