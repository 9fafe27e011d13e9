-- What an API token may do (`read`: GET only; `write`: an editor's rights; `send`: an admin's),
-- until when, and who made it. Tokens made before keep what they had: scope `send`, no expiry.
ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'send' CHECK (scope IN ('read', 'write', 'send')),
    ADD COLUMN expires_at timestamptz,
    -- who: a staff address or "command line" (as the audit log writes it)
    ADD COLUMN created_by text NOT NULL DEFAULT 'command line';
