//! The plans of the statements on the executor's hot path: each must find its rows through an
//! index, so that claiming, finishing and scheduling cost the same with 100 tasks stored as with
//! 100,000. The test runs the hot path with `Connection::trace` on, then asks SQLite for the plan
//! of every statement it saw, and fails on a scan of a whole table.

use std::sync::Mutex;

use super::*;
use crate::model::{NewBatch, NewTask, Project, TaskRef, TaskSettings};

/// The statements traced, as run (parameters filled in).
static TRACED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(sql: &str) {
    TRACED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sql.to_owned());
}

/// Scans that stay small whatever is stored: partial indexes over the pending or running tasks
/// only (a ready task is found at their front; running tasks are at most the cap), and over the
/// orchestrations with isolated tasks not integrated yet (the live ones, not the history), and over
/// the isolated tasks that wait.
const BOUNDED_SCANS: [&str; 5] = [
    "USING INDEX tasks_claim",
    "USING INDEX tasks_running_lease",
    "USING INDEX orchestrations_integration_pending",
    // The waiting isolated tasks (the stager reads the first few).
    "USING INDEX tasks_stage_wanted",
    "USING INDEX tasks_isolated_waiting",
];

/// Statements whose scan stops at once: the newest live orchestration, read backwards in rowid
/// order (only orchestrations merged into an older one are passed over).
const SCANS_FROM_THE_END: [&str; 1] =
    ["WHERE merged_into IS NULL\n                     ORDER BY orchestration_id DESC LIMIT 1"];

/// Tables of one row (`CHECK (id = 1)`): scanning them is reading that row.
const ONE_ROW_TABLES: [&str; 1] = ["SCAN usage_limit"];

fn here() -> Project {
    Project::from_stored("/".to_owned())
}

/// A graph of `layers` layers of `width`, each task depending on one of the layer before.
fn layered(name: &str, layers: usize, width: usize) -> NewBatch {
    let mut tasks = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            let depends_on =
                if layer == 0 { Vec::new() } else { vec![TaskRef::Identifier(format!("t{}-{i}", layer - 1))] };
            tasks.push(NewTask {
                identifier: format!("t{layer}-{i}"),
                prompt: "p".to_owned(),
                depends_on,
                settings: TaskSettings::for_tests().into(),
                project: here(),
            });
        }
    }
    NewBatch {
        orchestration: Some(name.to_owned()),
        new_orchestration: true,
        tasks,
        queued_by: None,
        scope: here(),
        // A budget, so that its reads are on the path too.
        budget_usd: Some(100.0),
        default_budget_usd: None,
        isolation: None,
    }
}

#[test]
fn the_hot_path_reads_through_indexes_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("tasks.db")).expect("open");
    // Bulk the planner sees: other orchestrations, finished and waiting.
    for n in 0..10 {
        store.create_batch(&layered(&format!("other-{n}"), 5, 20), 1000, 3_600_000, 1).expect("create");
    }
    let created = store.create_batch(&layered("hot", 3, 4), 1000, 3_600_000, 2).expect("create");

    #[expect(deprecated, reason = "only the old trace hands over statements with their parameters filled in")]
    store.conn.trace(Some(record));
    let now = 10;
    let _ = store.schedule(now).expect("schedule");
    let claims = store.claim_ready("me", 100, 8, 30_000, now).expect("claim");
    assert!(!claims.is_empty());
    for (i, claim) in claims.iter().enumerate() {
        let id = claim.task.task_id;
        store.mark_started(id, "me", claim.fence, 4242, now).expect("started");
        store.record_progress(id, "me", claim.fence, Some("Bash: ls"), Some("session")).expect("progress");
        store.heartbeat(id, "me", claim.fence, 30_000, now).expect("heartbeat");
        let stats = RunStats { cost_usd: 0.01, ..RunStats::default() };
        let finish = if i == 0 {
            Finish::Failed { error: crate::model::TaskError::new(crate::model::ErrorKind::Auth, "no") }
        } else {
            Finish::Completed { result: Some("ok".to_owned()) }
        };
        store.finish(id, "me", claim.fence, &finish, &stats, now + 1).expect("finish");
    }
    let _ = store.schedule(now + 2).expect("schedule");
    let _ = store.foreign_claims("me").expect("foreign");
    let _ = store.cancel_requested_among(&[created.tasks[0].task_id]).expect("cancels");
    // What a dependent's attempt reads of its dependencies' results before it starts.
    let _ = store.dependency_results(created.tasks[11].task_id).expect("dependency results");
    let _ = store.marks(&[created.tasks[0].task_id], &[created.orchestration_id]).expect("marks");
    // What `wait` reads on every change it wakes for, and an isolated task's start.
    let _ = store.orchestration_counters(created.orchestration_id).expect("counters");
    let _ = store.isolation_of(created.orchestration_id).expect("isolation");
    // The stager, on every pass that finds a waiting isolated task without its worktree.
    let _ = store.waiting_isolated(4).expect("waiting");
    let _ = store.record_staged(created.tasks[11].task_id, "/wt").expect("staged");
    let _ = store.expire_orchestrations(now + 3).expect("expire");
    let mut follow = layered("follow", 1, 1);
    follow.orchestration = None;
    follow.new_orchestration = false;
    // Setting a budget reads the whole orchestration (what it reopens): a rare act, not the path.
    follow.budget_usd = None;
    follow.tasks[0].identifier = "follow".to_owned();
    follow.tasks[0].depends_on = vec![TaskRef::Id(created.tasks[11].task_id)];
    store.create_batch(&follow, 1000, 3_600_000, now + 4).expect("create");
    #[expect(deprecated, reason = "the same trace as above, switched off")]
    store.conn.trace(None);

    let traced = std::mem::take(&mut *TRACED.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let mut seen = std::collections::HashSet::new();
    let mut scans = Vec::new();
    for sql in traced {
        let sql = sql.trim();
        let verb = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if !matches!(verb.as_str(), "SELECT" | "UPDATE" | "INSERT" | "DELETE" | "WITH") || !seen.insert(sql.to_owned())
        {
            continue;
        }
        let mut stmt = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
        let plan: Vec<String> =
            stmt.query_map([], |row| row.get(3)).expect("plan").collect::<Result<_, _>>().expect("rows");
        for step in plan {
            let whole_table = step.starts_with("SCAN ")
                && !step.starts_with("SCAN CONSTANT ROW")
                // A recursive query's own rows (named `queue` by convention): what it found so far.
                && step != "SCAN queue"
                && !ONE_ROW_TABLES.contains(&step.as_str())
                && !BOUNDED_SCANS.iter().any(|ok| step.contains(ok))
                && !SCANS_FROM_THE_END.iter().any(|ok| sql.ends_with(ok));
            // The tasks of a whole orchestration, read for one task's change: what made a graph
            // of n tasks cost n².
            let whole_orchestration = step.contains("tasks_orchestration_status (orchestration_id=?)");
            if whole_table || whole_orchestration {
                scans.push(format!("{step}\n    in: {sql}"));
            }
        }
    }
    assert!(seen.len() > 20, "the hot path ran: {} statements", seen.len());
    assert!(scans.is_empty(), "statements that read a whole table or orchestration:\n{}", scans.join("\n"));
}
