-- The original mail's Message-ID as a report states it. Soft bounces count per mail: the
-- reports of one mail (its delivery row, else this Message-ID) count once.
ALTER TABLE bounce_reports ADD COLUMN message_id text;
