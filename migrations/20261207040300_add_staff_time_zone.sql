-- Each member of staff reads times on the staff pages in their own time zone (an IANA name);
-- none: the service's `server.time_zone`.
ALTER TABLE staff ADD COLUMN time_zone text CHECK (time_zone IS NULL OR length(time_zone) <= 64);
