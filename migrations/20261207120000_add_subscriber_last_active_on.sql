-- `engagement.remember_last_activity`: the day a subscriber last clicked a counted link, opened
-- their preferences page or confirmed. One date, no history; NULL while the setting is off.
ALTER TABLE subscribers ADD COLUMN last_active_on date;
