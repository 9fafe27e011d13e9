-- An archived list takes no sign-ups, imports or sends and is hidden from the public forms;
-- its subscriptions and history stay. NULL: the list is open.
ALTER TABLE lists ADD COLUMN archived_at timestamptz;
