-- The two-person rule (sending.require_approval): an update waits in awaiting_approval until a
-- different admin approves it. The time zone a schedule was given in is kept to show it back.
ALTER TABLE updates DROP CONSTRAINT updates_status_check;
ALTER TABLE updates ADD CONSTRAINT updates_status_check
    CHECK (status IN ('draft', 'awaiting_approval', 'scheduled', 'sending', 'sent', 'paused', 'cancelled'));
ALTER TABLE updates
    ADD COLUMN approval_requested_by uuid REFERENCES staff (id) ON DELETE SET NULL,
    ADD COLUMN approved_by uuid REFERENCES staff (id) ON DELETE SET NULL,
    ADD COLUMN time_zone text;

-- Keys of staff-area forms already acted on, so a double-submitted send does it once.
CREATE TABLE staff_form_keys (
    key text PRIMARY KEY,
    staff_id uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
