-- Work queued from inside a task: the task whose attempt queued it (through a claude-worker
-- server its CLI started), and how deep such queuing has gone (0: queued by a person or a client
-- outside any task; a task at depth N queues at depth N + 1). The creator may be pruned before
-- what it queued: the link is then forgotten, the depth kept.
ALTER TABLE tasks ADD COLUMN created_by INTEGER REFERENCES tasks (task_id) ON DELETE SET NULL;
ALTER TABLE tasks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
-- Serves the foreign key's ON DELETE when pruning deletes tasks.
CREATE INDEX tasks_created_by ON tasks (created_by) WHERE created_by IS NOT NULL;
