-- Isolated tasks that wait for their dependencies get their worktree made ahead of their start
-- (staged): `worktree_path` set while `branch` is still NULL. These indexes keep the executor's
-- look for them the size of the waiting isolated tasks, not of the database: whether one still
-- needs its worktree (every pass), and the first few waiting ones in order (the stager).
CREATE INDEX tasks_stage_wanted ON tasks (task_id)
    WHERE isolation = 'worktree' AND status = 'waiting' AND worktree_path IS NULL;
CREATE INDEX tasks_isolated_waiting ON tasks (task_id)
    WHERE isolation = 'worktree' AND status = 'waiting';

-- The name an orchestration's branches are under (`claude-worker/<branch_label>/...`), chosen
-- when its base is recorded: `<id>-<name>`, with a suffix when another database on the same
-- repository holds branches under that name already. Kept, so that a renamed orchestration still
-- finds (and prunes) its branches. NULL for orchestrations recorded before: `<id>-<name>` then.
ALTER TABLE orchestrations ADD COLUMN branch_label TEXT;
