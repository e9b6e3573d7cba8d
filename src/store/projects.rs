//! The project side of the store: where bare identifiers and orchestration names are looked
//! for, the sentences for a name that exists only in another project, and the migration step
//! that gives existing tasks and orchestrations their project.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::model::{OrchestrationId, TaskId};
use crate::project::Project;

/// The newest task of an identifier in a project.
pub(super) fn task_in_project(
    tx: &Connection,
    project: &Project,
    identifier: &str,
) -> Result<Option<TaskId>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT task_id FROM tasks WHERE project = ?1 AND task_identifier = ?2 ORDER BY task_id DESC LIMIT 1",
        )?
        .query_row(params![project.as_str(), identifier], |row| row.get(0))
        .optional()?)
}

/// A task of that identifier in another project than `project`: the newest, with its project.
pub(super) fn task_elsewhere(
    tx: &Connection,
    project: &Project,
    identifier: &str,
) -> Result<Option<(TaskId, Project)>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT task_id, project FROM tasks WHERE task_identifier = ?2 AND project <> ?1
             ORDER BY task_id DESC LIMIT 1",
        )?
        .query_row(params![project.as_str(), identifier], |row| Ok((row.get(0)?, Project::from_stored(row.get(1)?))))
        .optional()?)
}

/// The refusal for a bare identifier that names no task in the caller's project.
pub(super) fn unknown_task(tx: &Connection, project: &Project, identifier: &str) -> Result<StoreError, StoreError> {
    Ok(StoreError::NotFound(match task_elsewhere(tx, project, identifier)? {
        Some((task_id, other)) => format!(
            "no task {identifier} in this project ({project}): the task {identifier:?} is #{task_id}, in project \
             {other}. Bare identifiers name tasks of the caller's project only; give #{task_id} to reach that one"
        ),
        None => format!(
            "no task {identifier} in this project ({project}): give a task identifier or #<task_id> (list_tasks \
             shows the stored ones)"
        ),
    }))
}

/// A live orchestration of that name in another project than `project`: the newest, with its
/// project.
pub(super) fn orchestration_elsewhere(
    tx: &Connection,
    project: &Project,
    name: &str,
) -> Result<Option<(OrchestrationId, Project)>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT orchestration_id, project FROM orchestrations
             WHERE name = ?2 AND project <> ?1 AND merged_into IS NULL ORDER BY orchestration_id DESC LIMIT 1",
        )?
        .query_row(params![project.as_str(), name], |row| Ok((row.get(0)?, Project::from_stored(row.get(1)?))))
        .optional()?)
}

/// The project of a stored orchestration.
pub(super) fn orchestration_project(tx: &Connection, id: OrchestrationId) -> Result<Project, StoreError> {
    Ok(tx
        .prepare_cached("SELECT project FROM orchestrations WHERE orchestration_id = ?1")?
        .query_row([id], |row| row.get(0).map(Project::from_stored))?)
}

/// Migration 0004's step in Rust: gives every task the project of its stored working
/// directory (looked at on this machine's file system now; a directory that is gone is its own
/// project, unless an ancestor still holds a `.git`), and every orchestration the project of
/// its newest task (one merged into another takes its survivor's).
pub(super) fn backfill_projects(tx: &Connection) -> rusqlite::Result<()> {
    let directories: Vec<String> = tx
        .prepare("SELECT DISTINCT working_directory FROM tasks WHERE project = ''")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let projects: HashMap<&str, Project> =
        directories.iter().map(|dir| (dir.as_str(), Project::of_directory(Path::new(dir)))).collect();
    let mut update = tx.prepare("UPDATE tasks SET project = ?2 WHERE working_directory = ?1 AND project = ''")?;
    for (dir, project) in &projects {
        update.execute(params![dir, project.as_str()])?;
    }
    tx.execute_batch(
        "UPDATE orchestrations SET project = coalesce(
             (SELECT project FROM tasks WHERE tasks.orchestration_id = orchestrations.orchestration_id
              ORDER BY task_id DESC LIMIT 1), '')
         WHERE project = '';
         UPDATE orchestrations SET project = coalesce(
             (SELECT survivor.project FROM orchestrations AS survivor
              WHERE survivor.orchestration_id = orchestrations.merged_into), '')
         WHERE project = '' AND merged_into IS NOT NULL;",
    )
}
