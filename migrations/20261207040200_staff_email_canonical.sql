-- A member of staff is named by one spelling everywhere: the canonical address (lower-case
-- local part, A-label domain), as sign-ins, sessions and the audit log already name them.
UPDATE staff SET email = email_normalized WHERE email <> email_normalized;
