-- Projects: the top of the git work tree holding a task's working directory (or the directory
-- itself outside git). Bare identifiers and orchestration names resolve within the caller's
-- project, and an orchestration holds the tasks of one project. The project of the rows that
-- exist is filled in by the migration's Rust step (store::backfill_projects), in the same
-- transaction: finding a git work tree needs the file system, which SQL cannot look at.
-- (Written not to depend on 0003's columns.)
ALTER TABLE tasks ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE orchestrations ADD COLUMN project TEXT NOT NULL DEFAULT '';
-- Serves bare identifiers: the newest task of a name in a project.
CREATE INDEX tasks_project_identifier ON tasks (project, task_identifier, task_id);
-- Orchestration names are unique per project (a `build-all` in each of two repositories).
DROP INDEX orchestrations_name;
CREATE UNIQUE INDEX orchestrations_name ON orchestrations (project, name)
    WHERE name IS NOT NULL AND merged_into IS NULL;
