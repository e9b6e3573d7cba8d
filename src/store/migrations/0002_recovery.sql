-- Recovery of attempts whose owner died: the Claude session an interrupted attempt leaves to the
-- next one, so that it resumes instead of starting over.
ALTER TABLE tasks ADD COLUMN resume_session_id TEXT;
-- Serves the search for attempts to recover: running tasks, by lease expiry.
CREATE INDEX tasks_running_lease ON tasks (lease_expires_at) WHERE status = 'running';
