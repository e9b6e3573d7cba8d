//! The read an attempt of a dependent makes before it starts: what its dependencies reported
//! (identifier, result text, structured result, result commit with isolation), for the results section of its prompt
//! ([`crate::prompt`]). One indexed statement over the task's own dependencies.

use super::{Store, StoreError};
use crate::model::TaskId;
use crate::prompt::DependencyResult;

/// How much of a dependency's result text is read, in characters: well beyond what a prompt
/// shows of it ([`crate::prompt::PER_DEPENDENCY_BYTES`]), so that the prompt still sees that it
/// is cut, without reading megabytes of a long result for a few KiB.
pub const RESULT_READ_CHARS: i64 = 64 * 1024;

impl Store {
    /// The results of the tasks `task_id` depends on, by task id (the order the prompt shows
    /// them in). Each result text is read up to [`RESULT_READ_CHARS`]; `full_output` is left
    /// for the caller, which knows where the logs are.
    pub fn dependency_results(&mut self, task_id: TaskId) -> Result<Vec<DependencyResult>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT t.task_id, t.task_identifier, substr(t.result, 1, ?2), t.structured_result, t.result_commit
                 FROM task_dependencies d JOIN tasks t ON t.task_id = d.depends_on
                 WHERE d.task_id = ?1 ORDER BY d.depends_on",
            )?;
            let rows = stmt.query_map(rusqlite::params![task_id, RESULT_READ_CHARS], |row| {
                Ok(DependencyResult {
                    task_id: row.get(0)?,
                    identifier: row.get(1)?,
                    result: row.get(2)?,
                    structured_result: row
                        .get::<_, Option<String>>(3)?
                        .and_then(|text| serde_json::from_str(&text).ok()),
                    result_commit: row.get(4)?,
                    full_output: None,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
