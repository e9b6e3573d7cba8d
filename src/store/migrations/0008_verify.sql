-- Checked completion: a task's `verify` command, run after the CLI reports success, its own
-- timeout, and how many times Claude is asked to fix what it found before the task fails.
ALTER TABLE tasks ADD COLUMN verify TEXT;
ALTER TABLE tasks ADD COLUMN verify_timeout_seconds INTEGER NOT NULL DEFAULT 600;
ALTER TABLE tasks ADD COLUMN verify_attempts INTEGER NOT NULL DEFAULT 2;
