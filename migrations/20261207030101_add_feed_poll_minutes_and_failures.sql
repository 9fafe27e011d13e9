-- Each feed's own poll interval (null: the configured feeds.poll_minutes), and its consecutive
-- failures: the wait doubles with each, up to a day; a good poll sets it back to 0.
ALTER TABLE feeds
    ADD COLUMN poll_minutes integer CHECK (poll_minutes BETWEEN 5 AND 10080),
    ADD COLUMN failures integer NOT NULL DEFAULT 0;
