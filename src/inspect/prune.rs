//! `prune --older-than DURATION [--dry-run]`: deletes old finished work — whole orchestrations
//! whose every task finished before the cutoff, with their tasks, events, dependency edges (one
//! transaction, see `store/maintenance.rs`) and then the tasks' log files.
//!
//! It does not `VACUUM`: SQLite reuses the freed pages for new tasks, while `VACUUM` rewrites the
//! whole file under an exclusive lock that would stall every running server for as long as it
//! takes (and needs as much free disk again). To shrink the file, run `sqlite3 tasks.db VACUUM`
//! while no claude-worker runs.

use std::path::PathBuf;
use std::time::Duration;

use comfy_table::Cell;
use serde_json::{Value, json};

use super::color;
use super::render::table;
use crate::config::Config;
use crate::logs::TaskLogPaths;
use crate::model::Millis;
use crate::store::{Db, PruneReport};
use crate::time::{now_ms, rfc3339};

/// How many pruned tasks the text lists.
const TASKS_SHOWN: usize = 50;

/// The log files of what was pruned.
#[derive(Debug, Default)]
pub struct Files {
    pub count: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    /// Worktrees and branches of isolated tasks removed.
    pub worktrees: u64,
    pub branches: Vec<String>,
}

/// Every file a task may have left: its summary and detailed logs, and the tail segments of a
/// detailed log whose writer died before joining them.
fn task_files(dir: &std::path::Path, task_id: i64) -> [PathBuf; 4] {
    let paths = TaskLogPaths::new(dir, task_id);
    let tail = |n: u8| paths.detailed.with_extension(format!("log.tail{n}"));
    [tail(0), tail(1), paths.summary.clone(), paths.detailed.clone()]
}

pub async fn run(db: &Db, config: &Config, older_than: Duration, dry_run: bool) -> anyhow::Result<(Value, String)> {
    let cutoff = super::duration::before(now_ms(), older_than);
    let report = db.call(move |store| store.prune(cutoff, dry_run)).await?;
    let dir = config.task_log_dir();
    let mut files = Files::default();
    for task in &report.tasks {
        for path in task_files(&dir, task.task_id) {
            // The entry itself: a link planted there is removed, never followed.
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if !dry_run && let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    files.errors.push(format!("{}: {e}", path.display()));
                }
                continue;
            }
            files.count += 1;
            files.bytes += meta.len();
        }
    }
    let isolation = remove_isolation(&report, &config.spare_worktree_dir(), dry_run).await;
    files.errors.extend(isolation.errors);
    files.worktrees = isolation.worktrees;
    files.branches = isolation.branches;
    if !dry_run && !report.tasks.is_empty() {
        tracing::info!(
            "pruned {}, {}, {} and {} that finished before {}",
            crate::text::count(report.orchestrations.len() as u64, "orchestration"),
            crate::text::count(report.tasks.len() as u64, "task"),
            crate::text::count(report.events, "event"),
            crate::text::count(files.count, "log file"),
            rfc3339(cutoff)
        );
    }
    Ok((to_json(&report, &files, cutoff, dry_run), to_text(&report, &files, cutoff, dry_run)))
}

/// What was removed of pruned isolated work: worktrees, and branches (claude-worker's own,
/// under `claude-worker/<orchestration>/`).
#[derive(Debug, Default)]
struct Isolation {
    worktrees: u64,
    branches: Vec<String>,
    errors: Vec<String>,
}

/// Removes the worktrees left by pruned tasks (failed or cancelled ones keep theirs), the spare
/// worktrees kept of their repositories, and the branches of pruned orchestrations. Nothing of
/// it on a dry run.
async fn remove_isolation(report: &PruneReport, spares: &std::path::Path, dry_run: bool) -> Isolation {
    let mut done = Isolation::default();
    if dry_run {
        return done;
    }
    let git = crate::git::Git::new();
    for task in &report.tasks {
        if let (Some(repository), Some(path)) = (&task.repository, &task.worktree_path) {
            match git.remove_worktree(std::path::Path::new(repository), std::path::Path::new(path)).await {
                Ok(()) => done.worktrees += 1,
                Err(e) => done.errors.push(format!("the worktree {path}: {e}")),
            }
        }
    }
    let mut prefixes: Vec<(&str, String)> = report
        .repositories
        .iter()
        .map(|(repository, label)| (repository.as_str(), crate::git::orchestration_prefix(label)))
        .collect();
    // A task that joined from a merged orchestration keeps the branch it was made with.
    prefixes.extend(report.tasks.iter().filter_map(|t| Some((t.repository.as_deref()?, t.branch.clone()?))));
    prefixes.sort();
    prefixes.dedup();
    let mut repositories: Vec<&str> = prefixes.iter().map(|(repository, _)| *repository).collect();
    repositories.dedup();
    for repository in repositories {
        let repository = std::path::Path::new(repository);
        // Under the repository's lock: a server may be taking a spare for a task right now.
        let removed = match git.lock_repository(repository).await {
            Ok(_lock) => git.remove_spares(repository, spares).await,
            Err(e) => Err(e),
        };
        match removed {
            Ok(count) => done.worktrees += count,
            Err(crate::git::GitError::NotARepository { .. }) => {}
            Err(e) => done.errors.push(format!("the spare worktrees of {}: {e}", repository.display())),
        }
    }
    for (repository, prefix) in prefixes {
        match git.delete_branches(std::path::Path::new(repository), &prefix).await {
            Ok(cleanup) => done.branches.extend(cleanup.deleted),
            // A repository that is gone took its branches with it.
            Err(crate::git::GitError::NotARepository { .. }) => {}
            Err(e) => done.errors.push(format!("the branches {prefix}: {e}")),
        }
    }
    done.branches.sort();
    done.branches.dedup();
    done
}

fn to_json(r: &PruneReport, files: &Files, cutoff: Millis, dry_run: bool) -> Value {
    json!({
        "dry_run": dry_run,
        "cutoff": rfc3339(cutoff),
        "orchestrations": r.orchestrations,
        "tasks": r.tasks.iter().map(|t| json!({
            "task_id": t.task_id,
            "task_identifier": t.task_identifier,
            "orchestration_id": t.orchestration_id,
            "status": t.status.as_str(),
            "ended_at": t.ended_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "events": r.events,
        "dependencies": r.dependencies,
        "log_files": files.count,
        "log_bytes": files.bytes,
        "kept_finished": r.kept_finished,
        "worktrees": files.worktrees,
        "branches": files.branches,
        "errors": files.errors,
    })
}

fn to_text(r: &PruneReport, files: &Files, cutoff: Millis, dry_run: bool) -> String {
    use crate::text::{count, count_as};
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "{} {} {}, {}, {}, {} and {} ({}): everything that finished before {}\n",
        if dry_run { color::bold("dry run:") } else { String::new() },
        verb,
        count(r.orchestrations.len() as u64, "orchestration"),
        count(r.tasks.len() as u64, "task"),
        count(r.events, "event"),
        count(r.dependencies, "dependency edge"),
        count(files.count, "log file"),
        count(files.bytes, "byte"),
        rfc3339(cutoff)
    )
    .trim_start()
    .to_owned();
    if files.worktrees > 0 || !files.branches.is_empty() {
        out.push_str(&format!(
            "removed {} and {} of isolated tasks\n",
            count(files.worktrees, "worktree"),
            count_as(files.branches.len() as u64, "branch", "branches")
        ));
    }
    if r.kept_finished > 0 {
        out.push_str(&format!(
            "kept {} that ended before then: their orchestrations have newer or unfinished tasks\n",
            count_as(r.kept_finished, "finished task", "finished tasks"),
        ));
    }
    for error in &files.errors {
        out.push_str(&format!("could not delete {error}\n"));
    }
    if !r.tasks.is_empty() {
        out.push_str(if dry_run { "tasks it would delete:\n" } else { "tasks deleted:\n" });
        let mut t = table(&["id", "task", "orch", "status", "ended"]);
        for task in r.tasks.iter().take(TASKS_SHOWN) {
            t.add_row(vec![
                Cell::new(format!("#{}", task.task_id)),
                Cell::new(&task.task_identifier),
                Cell::new(task.orchestration_id),
                color::status_cell(task.status.as_str()),
                Cell::new(task.ended_at.map(rfc3339).unwrap_or_default()),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
        if r.tasks.len() > TASKS_SHOWN {
            out.push_str(&format!("... and {} more (--json lists all)\n", r.tasks.len() - TASKS_SHOWN));
        }
    }
    out
}
