-- A notice to a member of staff (a digest waits for review): one mail, outside any update's
-- ledger, to the address in its payload.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('confirmation', 'update', 'welcome', 'test', 'notice'));
