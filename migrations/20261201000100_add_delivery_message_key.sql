-- A random key per mail that is not part of an update, given at its first claim and kept
-- across retries: its Message-ID is built from it, so no two installations (or one restored
-- from a backup, whose row ids start again) ever send two mails with one Message-ID. Update
-- rows keep NULL: their Message-ID holds the update's UUID.
ALTER TABLE deliveries ADD COLUMN message_key uuid;
