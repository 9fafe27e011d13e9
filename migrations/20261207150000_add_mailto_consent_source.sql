-- An unsubscribe by a mail to the RFC 2369 `mailto:` address of List-Unsubscribe.
ALTER TABLE consent_events DROP CONSTRAINT consent_events_source_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_source_check
    CHECK (source IN ('form', 'api', 'link', 'one_click', 'admin', 'import', 'report', 'mailto'));
