-- Isolation (issue 11): a task may run in a git worktree of its own, on its own branch, started
-- from the orchestration's base commit or from the merge of its dependencies' results.
ALTER TABLE tasks ADD COLUMN isolation TEXT NOT NULL DEFAULT 'none' CHECK (isolation IN ('none', 'worktree'));
ALTER TABLE tasks ADD COLUMN on_conflict TEXT NOT NULL DEFAULT 'resolve' CHECK (on_conflict IN ('resolve', 'fail'));
-- The worktree as made for the task (kept across attempts: a task taken back resumes there;
-- NULL again once it was removed), its branch, the commit it started from, and the files the
-- merge of its dependencies' results left with conflict markers (one per line).
ALTER TABLE tasks ADD COLUMN worktree_path TEXT;
ALTER TABLE tasks ADD COLUMN branch TEXT;
ALTER TABLE tasks ADD COLUMN start_commit TEXT;
ALTER TABLE tasks ADD COLUMN merge_conflicts TEXT;
-- What the task left: the commit on its branch after a successful run, and a short diffstat.
ALTER TABLE tasks ADD COLUMN result_commit TEXT;
ALTER TABLE tasks ADD COLUMN diffstat TEXT;

-- The repository (top of its main work tree) of an orchestration's isolated tasks, the base its
-- tasks without dependencies start from (as asked and as resolved when the first isolated task
-- was stored), and whether the integration branch is merged into the user's checkout at the end.
ALTER TABLE orchestrations ADD COLUMN repository TEXT;
ALTER TABLE orchestrations ADD COLUMN base_ref TEXT;
ALTER TABLE orchestrations ADD COLUMN base_commit TEXT;
ALTER TABLE orchestrations ADD COLUMN merge_when_done INTEGER NOT NULL DEFAULT 0;
-- The integration of an orchestration with isolated tasks: 'pending' until it ended and its
-- results were merged ('done', the commit in integration_commit) or it ended without completing
-- ('abandoned': only the worktrees of its completed tasks removed). When its results conflict, a
-- task that resolves them is added, which reopens it: still 'pending'. Reopened after its end (a
-- retry, a task joining), it is 'pending' again (the trigger below).
ALTER TABLE orchestrations ADD COLUMN integration_state TEXT
    CHECK (integration_state IN ('pending', 'done', 'abandoned'));
ALTER TABLE orchestrations ADD COLUMN integration_commit TEXT;
-- What the end did beyond the branch: merged into the checkout, or why not.
ALTER TABLE orchestrations ADD COLUMN integration_note TEXT;
CREATE INDEX orchestrations_integration_pending ON orchestrations (orchestration_id)
    WHERE integration_state = 'pending';
CREATE TRIGGER orchestrations_integration_reopened
AFTER UPDATE OF status ON orchestrations
WHEN NEW.status IN ('pending', 'running') AND OLD.status IN ('completed', 'failed', 'cancelled')
    AND NEW.integration_state IN ('done', 'abandoned')
BEGIN
    UPDATE orchestrations SET integration_state = 'pending' WHERE orchestration_id = NEW.orchestration_id;
END;
