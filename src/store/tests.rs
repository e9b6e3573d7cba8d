//! The store against a real SQLite file: opening and migrating, fenced claims and completions,
//! the global cap, all-or-nothing batches, and refusing a database from a newer version.

use super::*;
use crate::model::{ErrorKind, NewBatch, NewTask, Project, TaskError, TaskRef, TaskSettings};
use run::MAX_RECLAIMS;

/// The project of the tests' tasks (their working directory is `/`), and the caller's.
fn here() -> Project {
    Project::from_stored("/".to_owned())
}

fn settings() -> TaskSettings {
    TaskSettings { allowed_tools: vec!["Bash(git log:*)".to_owned()], ..TaskSettings::for_tests() }
}

fn task(identifier: &str, deps: &[&str]) -> NewTask {
    NewTask {
        identifier: identifier.to_owned(),
        prompt: format!("do {identifier}"),
        depends_on: deps.iter().map(|d| TaskRef::parse(d)).collect(),
        settings: settings().into(),
        project: here(),
    }
}

fn batch(tasks: Vec<NewTask>) -> NewBatch {
    NewBatch {
        orchestration: None,
        new_orchestration: true,
        tasks,
        queued_by: None,
        scope: here(),
        budget_usd: None,
        default_budget_usd: None,
        isolation: None,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("home/tasks.db")).expect("open");
    (dir, store)
}

#[test]
fn opens_private_in_wal_mode_at_the_current_schema() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, mut store) = open();
    let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
    assert_eq!(mode, "wal");
    let version: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, SCHEMA_VERSION as i64);
    let file = std::fs::metadata(dir.path().join("home/tasks.db")).expect("file");
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    let home = std::fs::metadata(dir.path().join("home")).expect("dir");
    assert_eq!(home.permissions().mode() & 0o777, 0o700);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn a_newer_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    drop(Store::open(&path).expect("create"));
    {
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        conn.pragma_update(None, "journal_mode", "DELETE").expect("no wal");
    }
    let before = std::fs::read(&path).expect("read");
    match Store::open(&path) {
        Err(StoreError::TooNew { found: 99, .. }) => {}
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before, "not a byte changed");
    assert!(!dir.path().join("tasks.db-wal").exists(), "not even switched to WAL");
}

#[test]
fn fresh_database_opened_by_many_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Store::open(&path).map(|_| ()))
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread").expect("every opener succeeds");
    }
}

#[test]
fn claims_respect_the_cap_and_completions_are_fenced() {
    let (_dir, mut store) = open();
    store
        .create_batch(&batch(vec![task("a", &[]), task("b", &[]), task("c", &["a"])]), 100, 3_600_000, 1)
        .expect("create");
    let first = store.claim_ready("one", 1, 4, 30_000, 2).expect("claim").pop().expect("a task");
    assert_eq!(first.task.task_identifier, "a");
    assert_eq!(first.task.settings.allowed_tools, ["Bash(git log:*)"]);
    assert!(store.claim_ready("two", 1, 4, 30_000, 2).expect("claim").is_empty(), "the cap of 1 is reached");

    let done = Finish::Completed { result: Some("ok".to_owned()) };
    let stale =
        store.finish(first.task.task_id, "one", first.fence + 1, &done, &RunStats::default(), 3).expect("finish");
    assert!(!stale.accepted, "a wrong fence is refused");
    let other = store.finish(first.task.task_id, "two", first.fence, &done, &RunStats::default(), 3).expect("finish");
    assert!(!other.accepted, "another owner is refused");
    let ok = store.finish(first.task.task_id, "one", first.fence, &done, &RunStats::default(), 3).expect("finish");
    assert!(ok.accepted);
    assert_eq!(ok.promoted.len(), 1, "c became ready");
    let again = store.finish(first.task.task_id, "one", first.fence, &done, &RunStats::default(), 4).expect("finish");
    assert!(!again.accepted, "a second completion of the same attempt is refused");
    assert_eq!(store.heartbeat(first.task.task_id, "one", first.fence, 30_000, 5).expect("heartbeat"), Heartbeat::Lost);
    let events = store.events(&TaskRef::Identifier("a".to_owned()), &here()).expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "claimed", "completed"]);
}

#[test]
fn only_the_outcome_that_finishes_an_orchestration_reports_it() {
    let (_dir, mut store) = open();
    let mut b = batch(vec![task("a", &[]), task("b", &[])]);
    b.orchestration = Some("pair".to_owned());
    store.create_batch(&b, 100, 3_600_000, 1).expect("create");
    let claims = store.claim_ready("one", 2, 2, 30_000, 2).expect("claim");
    assert_eq!(claims.len(), 2);
    let done = Finish::Completed { result: Some("ok".to_owned()) };
    let first = store.finish(claims[0].task.task_id, "one", claims[0].fence, &done, &RunStats::default(), 3);
    assert!(first.expect("finish").orchestration_finished.is_none(), "one task is still running");
    let stats = RunStats { cost_usd: 0.25, ..RunStats::default() };
    let failed = Finish::Failed { error: crate::model::TaskError { kind: ErrorKind::Auth, message: "no".to_owned() } };
    let last = store.finish(claims[1].task.task_id, "one", claims[1].fence, &failed, &stats, 4).expect("finish");
    let end = last.orchestration_finished.expect("the last outcome finished it");
    assert_eq!(end.name.as_deref(), Some("pair"));
    assert_eq!(end.status, crate::model::OrchestrationStatus::Failed);
    assert_eq!((end.counters.completed, end.counters.failed), (1, 1));
    assert!((end.cost_usd - 0.25).abs() < 1e-9);
    let again = store.finish(claims[1].task.task_id, "one", claims[1].fence, &failed, &stats, 5).expect("finish");
    assert!(!again.accepted && again.orchestration_finished.is_none(), "a refused outcome reports nothing");
}

#[test]
fn a_batch_with_a_bad_dependency_stores_nothing() {
    let (_dir, mut store) = open();
    let err = store
        .create_batch(&batch(vec![task("a", &[]), task("b", &["a", "missing"])]), 100, 3_600_000, 1)
        .expect_err("unknown dependency");
    assert!(matches!(err, StoreError::UnknownDependency(ref u) if u.to_string().contains("missing")), "{err}");
    let count: i64 = store.conn.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).expect("count");
    assert_eq!(count, 0);
    let count: i64 = store.conn.query_row("SELECT count(*) FROM orchestrations", [], |r| r.get(0)).expect("count");
    assert_eq!(count, 0);
}

#[test]
fn the_orchestration_size_limit_holds() {
    let (_dir, mut store) = open();
    let tasks: Vec<NewTask> = (0..3).map(|i| task(&format!("t{i}"), &[])).collect();
    let err = store.create_batch(&batch(tasks), 2, 3_600_000, 1).expect_err("too many");
    assert!(err.to_string().contains("MAX_TASKS_PER_ORCHESTRATION"), "{err}");
}

#[tokio::test]
async fn a_burst_of_operations_commits_together_and_a_failure_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let db = Db::spawn(Store::open(&path).expect("open")).expect("db thread");
    let mut calls = Vec::new();
    for i in 0..40 {
        let db = db.clone();
        calls.push(tokio::spawn(async move {
            let mut b = batch(vec![task(&format!("t{i}"), &[])]);
            b.orchestration = Some("burst".to_owned());
            b.new_orchestration = false;
            // Every tenth asks for a dependency that does not exist.
            if i % 10 == 9 {
                b.tasks[0].depends_on.push(TaskRef::Identifier("missing".to_owned()));
            }
            db.call(move |s| s.create_batch(&b, 100, 3_600_000, 1)).await
        }));
    }
    let mut ok = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(_) => ok += 1,
            Err(StoreError::UnknownDependency(u)) => assert!(u.to_string().contains("missing"), "{u}"),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 36);
    let mut store = Store::open(&path).expect("reopen");
    let stored: i64 = store.conn.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).expect("count");
    assert_eq!(stored, 36, "every answered success is in the file");
    let events: i64 = store.conn.query_row("SELECT count(*) FROM task_events", [], |r| r.get(0)).expect("count");
    assert_eq!(events, 36, "a refused task left no event behind");
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn inside_a_group_a_failing_operation_undoes_only_itself() {
    let (_dir, mut store) = open();
    store.begin_group().expect("begin");
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("a");
    let err = store.create_batch(&batch(vec![task("b", &["missing"])]), 100, 3_600_000, 1).expect_err("b");
    assert!(matches!(err, StoreError::UnknownDependency(_)));
    store.create_batch(&batch(vec![task("c", &["a"])]), 100, 3_600_000, 1).expect("c sees a in the same group");
    store.end_group().expect("commit");
    let names: Vec<String> = store
        .list_tasks(&TaskFilter { status: None, orchestration_id: None, project: None, limit: 10 })
        .expect("list")
        .into_iter()
        .map(|t| t.task_identifier)
        .collect();
    assert_eq!(names, ["c", "a"]);
    let events: i64 = store.conn.query_row("SELECT count(*) FROM task_events", [], |r| r.get(0)).expect("count");
    assert_eq!(events, 2);
}

#[test]
fn a_cancel_asked_for_during_an_attempt_wins_over_its_retry() {
    let (_dir, mut store) = open();
    store.create_batch(&batch(vec![task("a", &[]), task("b", &["a"])]), 100, 3_600_000, 1).expect("create");
    let claimed = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim").pop().expect("a");
    let cancel =
        store.cancel(&CancelTarget::Task(TaskRef::Identifier("a".to_owned()), here()), "stop it", 3).expect("cancel");
    assert_eq!(cancel.stopping.len(), 1, "a runs: its owner is asked to stop it");
    let transient = Finish::Retry {
        error: crate::model::TaskError { kind: ErrorKind::Overloaded, message: "529".to_owned() },
        ready_at: 10,
    };
    let outcome =
        store.finish(claimed.task.task_id, "one", claimed.fence, &transient, &RunStats::default(), 4).expect("finish");
    assert_eq!(outcome.status, Some(TaskStatus::Cancelled));
    assert_eq!(outcome.skipped.len(), 1, "b is skipped");
    let a = store.task(&TaskRef::Identifier("a".to_owned()), &here()).expect("a").task;
    assert_eq!(a.error.map(|e| e.message), Some("stop it".to_owned()));
    assert!(store.claim_ready("two", 4, 4, 30_000, 20).expect("claim").is_empty(), "nothing runs again");
}

#[test]
fn marks_move_with_a_task_and_its_orchestration() {
    let (_dir, mut store) = open();
    let empty = store.marks(&[1], &[1]).expect("marks");
    assert_eq!(empty.tasks, vec![(1, None)], "no task yet");
    assert_eq!(empty.orchestrations, vec![(1, None)]);
    assert_eq!((empty.newest_task, empty.newest_orchestration), (None, None));

    let created =
        store.create_batch(&batch(vec![task("a", &[]), task("b", &["a"])]), 100, 3_600_000, 1).expect("create");
    let (a, o) = (created.tasks[0].task_id, created.orchestration_id);
    let before = store.marks(&[a], &[o]).expect("marks");
    let mark = before.tasks[0].1.clone().expect("a exists");
    assert_eq!((mark.status, mark.attempt), (TaskStatus::Pending, 0));
    assert_eq!(before.orchestrations[0].1.as_ref().expect("o exists").counters.pending, 1);
    assert_eq!(before.newest_task, Some(created.tasks[1].task_id));
    assert_eq!(before.newest_orchestration, Some(o));

    store.claim_ready("one", 4, 4, 30_000, 2).expect("claim");
    let after = store.marks(&[a], &[o]).expect("marks");
    assert_eq!(after.tasks[0].1.as_ref().map(|m| (m.status, m.attempt)), Some((TaskStatus::Running, 1)));
    assert_ne!(after.orchestrations, before.orchestrations, "the orchestration's counters moved");
    assert_eq!(after.newest_task, before.newest_task, "no new task");
}

#[tokio::test]
async fn a_full_database_tells_every_caller_what_to_do_and_keeps_exactly_the_successes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    drop(Store::open(&path).expect("create"));
    let pages: u64 = Connection::open(&path).expect("raw").query_row("PRAGMA page_count", [], |r| r.get(0)).expect("n");
    let db = Db::spawn(Store::open_with(&path, Some(pages + 20)).expect("open")).expect("db thread");
    let mut ok = 0;
    // A whole group may be told the database is full, even operations that would have fitted:
    // those that try again (as a caller told so does) are then taken one by one.
    let mut left: Vec<usize> = (0..40).collect();
    for _round in 0..2 {
        let mut calls = Vec::new();
        for &i in &left {
            let db = db.clone();
            calls.push((
                i,
                tokio::spawn(async move {
                    // Each prompt takes a few pages of its own.
                    let mut t = task(&format!("t{i}"), &[]);
                    t.prompt = "p".repeat(8 * 1024);
                    db.call(move |s| s.create_batch(&batch(vec![t]), 100, 3_600_000, 1)).await
                }),
            ));
        }
        left.clear();
        for (i, call) in calls {
            match call.await.expect("join") {
                Ok(_) => ok += 1,
                Err(e @ StoreError::Full { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.contains("CLAUDE_WORKER_MAX_DB_PAGES") && message.contains("free disk space"),
                        "{message}"
                    );
                    left.push(i);
                }
                Err(e) => panic!("expected a full database, got {e}"),
            }
        }
    }
    assert!(ok > 0 && ok < 40, "{ok} fitted");
    let mut store = Store::open(&path).expect("reopen");
    let stored: i64 = store.conn.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).expect("count");
    assert_eq!(stored, ok, "every answered success is in the file, nothing else");
    let events: i64 = store.conn.query_row("SELECT count(*) FROM task_events", [], |r| r.get(0)).expect("count");
    assert_eq!(events, ok);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_as_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let junk: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &junk).expect("write");
    match Store::open(&path) {
        Err(e @ StoreError::Corrupt { .. }) => assert!(e.to_string().contains("Restore it from a backup"), "{e}"),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(&path).expect("read"), junk, "not a byte changed");
}

#[test]
fn a_task_fails_after_five_deaths_in_a_row_and_a_retry_starts_the_count_again() {
    let (_dir, mut store) = open();
    let created = store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("create");
    let id = created.tasks[0].task_id;
    let die = |store: &mut Store, now: Millis| {
        let claimed = store.claim_ready("dead:1:1", 4, 1, 30_000, now).expect("claim");
        assert_eq!(claimed.len(), 1, "the task can be claimed");
        let claim =
            ForeignClaim { task_id: id, owner: "dead:1:1".to_owned(), fence: claimed[0].fence, lease_expires_at: 0 };
        store.reclaim(&claim, "its owner exited", now).expect("reclaim")
    };
    for n in 1..MAX_RECLAIMS {
        assert_eq!(die(&mut store, 10 + n).outcome.status, Some(TaskStatus::Pending), "death {n}: runs again");
    }
    let last = die(&mut store, 100);
    assert_eq!(last.outcome.status, Some(TaskStatus::Failed));
    assert!(matches!(&last.finish, Some(Finish::Failed { error }) if error.kind == ErrorKind::OwnerLost));

    store.retry(&TaskRef::Id(id), &here(), 200).expect("retry");
    assert_eq!(
        die(&mut store, 300).outcome.status,
        Some(TaskStatus::Pending),
        "a retry by request starts the count again"
    );
}

#[test]
fn retrying_an_orchestration_puts_every_unfinished_branch_back_in_one_go() {
    let (_dir, mut store) = open();
    // a <- b <- c, and d <- e on their own; a completes, b fails (c skipped), d is cancelled
    // before it ran (e skipped).
    let tasks = vec![task("a", &[]), task("b", &["a"]), task("c", &["b"]), task("d", &[]), task("e", &["d"])];
    let created = store.create_batch(&batch(tasks), 100, 3_600_000, 1).expect("create");
    let orchestration_id = created.orchestration_id;
    let id = |name: &str| created.tasks.iter().find(|t| t.identifier == name).expect("created").task_id;
    let cancel =
        store.cancel(&CancelTarget::Task(TaskRef::Identifier("d".to_owned()), here()), "not now", 2).expect("cancel");
    assert_eq!(cancel.skipped, [id("e")]);
    let a = store.claim_ready("one", 4, 4, 30_000, 3).expect("claim").pop().expect("a");
    let done = Finish::Completed { result: Some("ok".to_owned()) };
    store.finish(a.task.task_id, "one", a.fence, &done, &RunStats::default(), 4).expect("finish");
    let b = store.claim_ready("one", 4, 4, 30_000, 5).expect("claim").pop().expect("b");
    let failed = Finish::Failed { error: crate::model::TaskError { kind: ErrorKind::Auth, message: "no".to_owned() } };
    let end = store.finish(b.task.task_id, "one", b.fence, &failed, &RunStats::default(), 6).expect("finish");
    assert_eq!(end.skipped, [id("c")]);
    assert!(end.orchestration_finished.is_some(), "nothing is left to run");

    let outcome = store.retry_orchestration(orchestration_id, 1_000).expect("retry");
    assert_eq!(outcome.orchestration_id, orchestration_id);
    let reopened: Vec<(&str, TaskStatus, TaskStatus)> =
        outcome.tasks.iter().map(|t| (t.task_identifier.as_str(), t.was, t.status)).collect();
    assert_eq!(
        reopened,
        [
            ("b", TaskStatus::Failed, TaskStatus::Pending),
            ("c", TaskStatus::Skipped, TaskStatus::Waiting),
            ("d", TaskStatus::Cancelled, TaskStatus::Pending),
            ("e", TaskStatus::Skipped, TaskStatus::Waiting),
        ]
    );
    let detail =
        |store: &mut Store, name: &str| store.task(&TaskRef::Identifier(name.to_owned()), &here()).expect("task").task;
    let a = detail(&mut store, "a");
    assert_eq!((a.status, a.attempt, a.result.as_deref()), (TaskStatus::Completed, 1, Some("ok")), "untouched");
    let b = detail(&mut store, "b");
    assert_eq!((b.status, b.attempt, b.error.is_none()), (TaskStatus::Pending, 0, true), "fresh attempts");
    let kinds = |store: &mut Store, name: &str| -> Vec<String> {
        store
            .events(&TaskRef::Identifier(name.to_owned()), &here())
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(kinds(&mut store, "b").last().map(String::as_str), Some("retried"));
    assert_eq!(kinds(&mut store, "c").last().map(String::as_str), Some("reopened"));
    assert_eq!(kinds(&mut store, "a"), ["created", "claimed", "completed"]);
    let (status, cancel_requested, deadline_at): (String, bool, Option<i64>) = store
        .conn
        .query_row(
            "SELECT status, cancel_requested, deadline_at FROM orchestrations WHERE orchestration_id = ?1",
            [orchestration_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("orchestration");
    assert_eq!((status.as_str(), cancel_requested), ("running", false));
    assert_eq!(deadline_at, Some(1_000 + 3_600_000), "a fresh deadline from the retry");

    // Both roots run again; their dependents follow as usual.
    let claims = store.claim_ready("one", 4, 4, 30_000, 1_001).expect("claim");
    let mut claimed: Vec<&str> = claims.iter().map(|c| c.task.task_identifier.as_str()).collect();
    claimed.sort_unstable();
    assert_eq!(claimed, ["b", "d"]);
}

#[test]
fn retrying_an_orchestration_with_nothing_to_retry_is_refused() {
    let (_dir, mut store) = open();
    let created =
        store.create_batch(&batch(vec![task("a", &[]), task("b", &["a"])]), 100, 3_600_000, 1).expect("create");
    match store.retry_orchestration(created.orchestration_id, 2) {
        Err(StoreError::Refused(message)) => {
            assert!(message.contains("nothing to retry"), "{message}");
            assert!(message.contains("it is pending"), "{message}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        store.events(&TaskRef::Identifier("b".to_owned()), &here()).expect("events").len(),
        1,
        "nothing written"
    );
    assert!(matches!(store.retry_orchestration(999, 2), Err(StoreError::NotFound(_))));
}

#[test]
fn a_new_attempt_does_not_show_the_last_attempt_s_action() {
    let (_dir, mut store) = open();
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("create");
    let first = store.claim_ready("one", 4, 1, 30_000, 2).expect("claim").pop().expect("a task");
    let id = first.task.task_id;
    store.record_progress(id, "one", first.fence, Some("Text: API Error: 529 Overloaded"), None).expect("progress");
    let error = crate::model::TaskError { kind: ErrorKind::Overloaded, message: "API Error: 529".to_owned() };
    let retry = Finish::Retry { error, ready_at: 3 };
    store.finish(id, "one", first.fence, &retry, &RunStats::default(), 3).expect("finish");
    store.claim_ready("one", 4, 1, 30_000, 4).expect("claim").pop().expect("claimed again");
    let detail = store.task(&TaskRef::Id(id), &here()).expect("task");
    assert_eq!(detail.task.last_action, None, "attempt 2 has done nothing yet");
}

fn all_tasks() -> TaskFilter {
    TaskFilter { status: None, orchestration_id: None, project: None, limit: 100 }
}

/// Removes the database and its -wal and -shm files, as `rm tasks.db*` does.
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::remove_file(PathBuf::from(name)).expect("rm");
    }
}

#[test]
fn the_database_and_its_wal_and_shm_are_recorded_as_opened() {
    let (_dir, store) = open();
    let opened = store.opened.as_ref().expect("recorded");
    assert_eq!(opened.check(), None);
    assert!(opened.companions_same());
    for suffix in ["-wal", "-shm"] {
        let mut name = store.path.as_os_str().to_owned();
        name.push(suffix);
        assert!(Path::new(&name).exists(), "{suffix} exists while the connection is open");
    }
}

#[test]
fn a_deleted_database_refuses_every_operation_and_writes_nothing() {
    let (dir, mut store) = open();
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("a");
    let path = dir.path().join("home/tasks.db");
    remove_database(&path);
    let err = store.create_batch(&batch(vec![task("b", &[])]), 100, 3_600_000, 2).expect_err("b is refused");
    assert!(matches!(err, StoreError::Deleted { part: "", .. }), "{err:?}");
    assert!(err.to_string().contains("was deleted while this process had it open"), "{err}");
    assert!(matches!(store.list_tasks(&all_tasks()), Err(StoreError::Deleted { .. })), "reads are refused too");
    // The refusal sticks, even once a new database exists at the path.
    drop(Store::open(&path).expect("a new database at the path"));
    assert!(matches!(store.claim_ready("one", 4, 4, 30_000, 3), Err(StoreError::Deleted { .. })));
    // Nothing was written: the unlinked file still holds only `a`.
    let names: Vec<i64> = store
        .conn
        .prepare("SELECT task_id FROM tasks")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(names, [1]);
}

#[test]
fn a_database_replaced_by_another_file_is_refused_inside_a_group_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let backup = dir.path().join("backup.db");
    let mut store = Store::open(&path).expect("open");
    store.conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()]).expect("backup");
    std::fs::rename(&backup, &path).expect("mv backup.db tasks.db");
    store.begin_group().expect("begin");
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("a, in the group");
    let err = store.end_group().expect_err("the group is not committed");
    assert!(matches!(err, StoreError::Replaced { part: "", .. }), "{err:?}");
    assert!(err.for_each_waiter().is_lost(), "every waiter of the group hears why");
    assert!(err.to_string().contains("was replaced by another file"), "{err}");
    assert!(store.list_tasks(&all_tasks()).expect_err("refused").is_lost());
    // Closing the connection checkpoints and deletes our -wal and -shm (still ours), so that a
    // new process cannot pair them with the file now at the path.
    store.close_lost();
    drop(store);
    assert!(!dir.path().join("tasks.db-wal").exists() && !dir.path().join("tasks.db-shm").exists());
    let mut fresh = Store::open(&path).expect("the backup opens");
    assert!(fresh.list_tasks(&all_tasks()).expect("list").is_empty(), "the backup, without what the old file had");
    assert_eq!(fresh.integrity_check().expect("check"), "ok");
}

#[test]
fn closing_a_deleted_database_leaves_the_new_one_at_its_path_alone() {
    let (dir, mut old) = open();
    let path = dir.path().join("home/tasks.db");
    remove_database(&path);
    let mut new = Store::open(&path).expect("a new database at the path");
    new.create_batch(&batch(vec![task("kept", &[])]), 100, 3_600_000, 1).expect("kept");
    assert!(old.list_tasks(&all_tasks()).expect_err("refused").is_lost());
    old.close_lost();
    drop(old);
    assert_eq!(new.list_tasks(&all_tasks()).expect("list").len(), 1);
    drop(new);
    assert_eq!(Store::open(&path).expect("reopen").list_tasks(&all_tasks()).expect("list").len(), 1);
}

#[test]
fn a_database_moved_away_keeps_what_it_held() {
    let (dir, mut store) = open();
    let path = dir.path().join("home/tasks.db");
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("a");
    let moved = dir.path().join("home/tasks.db.moved");
    std::fs::rename(&path, &moved).expect("mv tasks.db tasks.db.moved");
    let err = store.create_batch(&batch(vec![task("b", &[])]), 100, 3_600_000, 2).expect_err("refused");
    assert!(matches!(err, StoreError::Deleted { part: "", .. }), "{err:?}");
    store.close_lost();
    drop(store);
    assert!(!dir.path().join("home/tasks.db-wal").exists(), "our WAL, copied into the moved file, is gone");
    let mut kept = Store::open(&moved).expect("the moved file opens");
    let names: Vec<String> =
        kept.list_tasks(&all_tasks()).expect("list").into_iter().map(|t| t.task_identifier).collect();
    assert_eq!(names, ["a"], "whole without its old WAL, and without the refused b");
    assert_eq!(kept.integrity_check().expect("check"), "ok");
}

#[test]
fn a_deleted_wal_is_found_too() {
    let (dir, mut store) = open();
    std::fs::remove_file(dir.path().join("home/tasks.db-wal")).expect("rm tasks.db-wal");
    let err = store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect_err("refused");
    assert!(matches!(err, StoreError::Deleted { part: " (its -wal file)", .. }), "{err:?}");
    assert!(err.to_string().contains("tasks.db (its -wal file) was deleted"), "{err}");
}

#[test]
fn work_queued_by_a_task_names_it_until_the_task_is_pruned() {
    let (_dir, mut store) = open();
    store.create_batch(&batch(vec![task("creator", &[])]), 100, 3_600_000, 1).expect("create");
    let claim = store.claim_ready("one", 1, 4, 30_000, 2).expect("claim").pop().expect("a task");
    let creator = claim.task.task_id;
    let attempt = store.attempt_of(creator).expect("read").expect("it exists");
    assert_eq!(attempt, crate::store::AttemptOf { fence: claim.fence, owner: Some("one".to_owned()), depth: 0 });
    assert_eq!(store.attempt_of(creator + 100).expect("read"), None);

    let mut queued = batch(vec![task("follow-up", &[])]);
    queued.queued_by = Some(crate::model::QueuedBy { task_id: creator, depth: 1 });
    let created = store.create_batch(&queued, 100, 3_600_000, 3).expect("create");
    let follow_up = created.tasks[0].task_id;
    let detail = store.task(&TaskRef::Id(follow_up), &here()).expect("read");
    assert_eq!((detail.task.created_by, detail.task.depth), (Some(creator), 1));
    let events = store.events(&TaskRef::Id(follow_up), &here()).expect("events");
    assert_eq!(events[0].detail.as_deref(), Some(format!("queued by #{creator}").as_str()));
    assert_eq!(store.attempt_of(follow_up).expect("read").map(|a| a.depth), Some(1));

    let done = Finish::Completed { result: Some("ok".to_owned()) };
    assert!(store.finish(creator, "one", claim.fence, &done, &RunStats::default(), 4).expect("finish").accepted);
    let report = store.prune(10, false).expect("prune");
    assert_eq!(report.tasks.len(), 1, "only the creator's finished orchestration goes");
    let detail = store.task(&TaskRef::Id(follow_up), &here()).expect("read");
    assert_eq!((detail.task.created_by, detail.task.depth), (None, 1), "the link is forgotten, the depth kept");
}

#[test]
fn a_seized_claim_refuses_the_old_owner_and_is_released_without_counting_the_attempt() {
    let (_dir, mut store) = open();
    let created = store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("create");
    let id = created.tasks[0].task_id;
    let claimed = store.claim_ready("old:1:1", 4, 1, 30_000, 10).expect("claim");
    let old = ForeignClaim { task_id: id, owner: "old:1:1".to_owned(), fence: claimed[0].fence, lease_expires_at: 0 };
    let seized = store.seize(&old, "new:2:2", 30_000, 20).expect("seize").expect("the claim was current");
    assert_eq!(seized.owner, "new:2:2");
    assert!(seized.fence > old.fence);
    assert!(store.seize(&old, "third:3:3", 30_000, 21).expect("seize").is_none(), "seized once only");
    // The old owner thaws and reports its killed CLI: refused.
    let stale = Finish::Failed { error: TaskError { kind: ErrorKind::KilledBySignal, message: "x".to_owned() } };
    let refused = store.finish(id, "old:1:1", old.fence, &stale, &RunStats::default(), 30).expect("finish");
    assert!(!refused.accepted);
    assert_eq!(store.heartbeat(id, "old:1:1", old.fence, 30_000, 30).expect("heartbeat"), Heartbeat::Lost);
    let released = store.reclaim(&seized, "the lease expired", 40).expect("reclaim");
    assert_eq!(released.outcome.status, Some(TaskStatus::Pending));
    let again = store.claim_ready("new:2:2", 4, 1, 30_000, 50).expect("claim");
    assert_eq!(again[0].task.attempt, 1, "the attempt was not counted");
}

#[test]
fn writers_check_the_database_at_start_and_readers_do_not() {
    assert_eq!(start_check(false, 1), StartCheck::None);
    assert_eq!(start_check(false, u64::MAX), StartCheck::None);
    assert_eq!(start_check(true, 4096), StartCheck::Full);
    assert_eq!(start_check(true, FULL_CHECK_MAX_BYTES), StartCheck::Full);
    assert_eq!(start_check(true, FULL_CHECK_MAX_BYTES + 1), StartCheck::Structure, "bounded however large");
}

fn in_project(identifier: &str, deps: &[&str], project: &str) -> NewTask {
    NewTask { project: Project::from_stored(project.to_owned()), ..task(identifier, deps) }
}

fn batch_from(project: &str, name: Option<&str>, tasks: Vec<NewTask>) -> NewBatch {
    NewBatch {
        orchestration: name.map(str::to_owned),
        new_orchestration: false,
        tasks,
        queued_by: None,
        scope: Project::from_stored(project.to_owned()),
        budget_usd: None,
        default_budget_usd: None,
        isolation: None,
    }
}

#[test]
fn bare_identifiers_and_orchestration_names_stay_in_their_project() {
    let (_dir, mut store) = open();
    let a = Project::from_stored("/src/a".to_owned());
    let b = Project::from_stored("/src/b".to_owned());
    let a_build = store
        .create_batch(&batch_from("/src/a", Some("all"), vec![in_project("build", &[], "/src/a")]), 50, 60_000, 1)
        .expect("a");
    let b_build = store
        .create_batch(&batch_from("/src/b", Some("all"), vec![in_project("build", &[], "/src/b")]), 50, 60_000, 2)
        .expect("b");
    assert_ne!(a_build.orchestration_id, b_build.orchestration_id, "a name per project");
    // The newest `build` is B's, but A's caller gets its own.
    let found = store.task(&TaskRef::Identifier("build".to_owned()), &a).expect("a's build");
    assert_eq!(found.task.task_id, a_build.tasks[0].task_id);
    assert_eq!(found.task.project, a);
    assert_eq!(store.orchestration_named("all", &b).expect("named"), Some(b_build.orchestration_id));
    // A dependency binds in the caller's project and joins that project's orchestration only.
    let test = store
        .create_batch(&batch_from("/src/a", None, vec![in_project("test", &["build"], "/src/a")]), 50, 60_000, 3)
        .expect("test");
    assert_eq!(test.orchestration_id, a_build.orchestration_id);
    assert!(test.merged.is_empty());
    // An identifier only in another project is refused with its #id; so is a #id dependency
    // across projects (it would merge orchestrations of two projects).
    let lint = store
        .create_batch(&batch_from("/src/b", None, vec![in_project("lint", &[], "/src/b")]), 50, 60_000, 4)
        .expect("lint");
    let lint_id = lint.tasks[0].task_id;
    let err = store.task(&TaskRef::Identifier("lint".to_owned()), &a).expect_err("not in a").to_string();
    assert!(err.contains(&format!("#{lint_id}")) && err.contains("/src/b"), "{err}");
    let err = store
        .create_batch(&batch_from("/src/a", None, vec![in_project("x", &["lint"], "/src/a")]), 50, 60_000, 5)
        .expect_err("bare, elsewhere")
        .to_string();
    assert!(err.contains(&format!("#{lint_id}")) && err.contains("/src/b"), "{err}");
    let err = store
        .create_batch(
            &batch_from("/src/a", None, vec![in_project("x", &[&format!("#{lint_id}")], "/src/a")]),
            50,
            60_000,
            5,
        )
        .expect_err("#id across projects")
        .to_string();
    assert!(err.contains("never cross projects"), "{err}");
    // #id still reads any task.
    assert_eq!(store.task(&TaskRef::Id(lint_id), &a).expect("#id").task.project, b);
    // One orchestration, one project.
    let err = store
        .create_batch(
            &batch_from("/src/a", None, vec![in_project("p", &[], "/src/a"), in_project("q", &[], "/src/b")]),
            50,
            60_000,
            6,
        )
        .expect_err("two projects in a batch")
        .to_string();
    assert!(err.contains("one project"), "{err}");
}

#[test]
fn a_version_2_database_gives_each_task_the_project_of_its_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("sub")).expect("mkdir");
    std::fs::create_dir(repo.join(".git")).expect("mkdir .git");
    let plain = root.join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let gone = repo.join("deleted-since");
    let path = root.join("tasks.db");
    {
        let mut conn = Connection::open(&path).expect("open");
        migrations().to_version(&mut conn, 2).expect("schema 2");
        conn.execute_batch(
            "INSERT INTO orchestrations (orchestration_id, name, created_at, timeout_ms) VALUES
                 (1, 'nightly', 1, 1000), (2, NULL, 2, 1000), (3, NULL, 3, 1000);
             UPDATE orchestrations SET merged_into = 1 WHERE orchestration_id = 3;",
        )
        .expect("orchestrations");
        for (id, orchestration, dir) in
            [(1, 1, repo.join("sub")), (2, 2, plain.clone()), (3, 1, gone.clone()), (4, 2, plain.clone())]
        {
            conn.execute(
                "INSERT INTO tasks (task_id, orchestration_id, task_identifier, execution_prompt, working_directory,
                     model, permission_mode, timeout_seconds, max_attempts, status, created_at, cost_usd)
                 VALUES (?1, ?2, ?3, 'p', ?4, 'sonnet', 'default', 60, 3, 'completed', ?1, ?1 * 0.1)",
                params![id, orchestration, format!("t{id}"), dir.to_str().expect("utf-8")],
            )
            .expect("task");
        }
    }
    let mut store = Store::open(&path).expect("migrated");
    let version: i64 = store.conn.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("version");
    assert_eq!(usize::try_from(version).expect("version"), SCHEMA_VERSION);
    let projects: Vec<String> = store
        .conn
        .prepare("SELECT project FROM tasks ORDER BY task_id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let (repo, plain) = (repo.display().to_string(), plain.display().to_string());
    // A directory deleted since still belongs to the repository above it.
    assert_eq!(projects, [repo.clone(), plain.clone(), repo.clone(), plain.clone()]);
    let orchestrations: Vec<String> = store
        .conn
        .prepare("SELECT project FROM orchestrations ORDER BY orchestration_id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(orchestrations, [repo.clone(), plain.clone(), repo.clone()], "a merged one takes its survivor's");
    let repo = Project::from_stored(repo);
    assert_eq!(store.orchestration_named("nightly", &repo).expect("named"), Some(1));
    let t1 = store.task(&TaskRef::Identifier("t1".to_owned()), &repo).expect("t1 in its project");
    assert_eq!(t1.task.project, repo);
    assert!(store.task(&TaskRef::Identifier("t2".to_owned()), &repo).is_err(), "t2 is in another project");
    // Counters kept from now on start from what the tasks were.
    assert_counters_exact(&store, "the migration");
    assert_eq!(kept_and_counted(&store).kept.len(), 2);
}

/// Tasks of an orchestration in a state: (orchestration, status, how many).
type Count = (i64, String, i64);

/// The kept counters and spend of every orchestration, and the same counted from its tasks.
struct Kept {
    kept: Vec<Count>,
    counted: Vec<Count>,
    /// (orchestration, its kept spend, the sum of its tasks' costs)
    spent: Vec<(i64, f64, f64)>,
}

fn kept_and_counted(store: &Store) -> Kept {
    let rows = |sql: &str| -> Vec<Count> {
        let mut stmt = store.conn.prepare(sql).expect("prepare");
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let kept = rows("SELECT orchestration_id, status, n FROM orchestration_counts WHERE n <> 0 ORDER BY 1, 2");
    let counted = rows("SELECT orchestration_id, status, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2");
    let mut stmt = store
        .conn
        .prepare(
            "SELECT o.orchestration_id, o.spent_usd, (SELECT total(cost_usd) FROM tasks t WHERE t.orchestration_id = o.orchestration_id)
             FROM orchestrations o ORDER BY 1",
        )
        .expect("prepare");
    let spent = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    Kept { kept, counted, spent }
}

fn assert_counters_exact(store: &Store, after: &str) {
    let Kept { kept, counted, spent } = kept_and_counted(store);
    assert_eq!(kept, counted, "after {after}");
    for (id, kept, summed) in spent {
        assert!((kept - summed).abs() < 1e-9, "orchestration {id} spent {kept}, its tasks {summed}, after {after}");
    }
}

#[test]
fn kept_counters_match_the_tasks_through_every_kind_of_change() {
    let (_dir, mut store) = open();
    let created =
        store.create_batch(&batch(vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])]), 100, 3_600_000, 1);
    let first = created.expect("create").orchestration_id;
    assert_counters_exact(&store, "create");
    // A task depending on two orchestrations merges them.
    store.create_batch(&batch(vec![task("x", &[])]), 100, 3_600_000, 2).expect("create");
    let mut joining = batch(vec![task("j", &["a", "x"])]);
    joining.new_orchestration = false;
    store.create_batch(&joining, 100, 3_600_000, 3).expect("merge");
    assert_counters_exact(&store, "merge");

    let claims = store.claim_ready("one", 4, 4, 30_000, 4).expect("claim");
    assert_eq!(claims.len(), 2, "a and x");
    assert_counters_exact(&store, "claim");
    let stats = RunStats { cost_usd: 0.1, ..RunStats::default() };
    let retry =
        Finish::Retry { error: TaskError { kind: ErrorKind::Overloaded, message: "529".to_owned() }, ready_at: 5 };
    store.finish(claims[0].task.task_id, "one", claims[0].fence, &retry, &stats, 5).expect("retry");
    assert_counters_exact(&store, "a retry");
    let stats = RunStats { cost_usd: 0.2, ..RunStats::default() };
    let done = Finish::Completed { result: Some("ok".to_owned()) };
    store.finish(claims[1].task.task_id, "one", claims[1].fence, &done, &stats, 6).expect("complete");
    assert_counters_exact(&store, "a completion");
    let again = store.claim_ready("one", 4, 4, 30_000, 7).expect("claim").pop().expect("a again");
    let failed = Finish::Failed { error: TaskError { kind: ErrorKind::Auth, message: "no".to_owned() } };
    store.finish(again.task.task_id, "one", again.fence, &failed, &stats, 8).expect("fail");
    assert_counters_exact(&store, "a failure that skips dependents");

    store.retry_orchestration(first, 9).expect("retry");
    assert_counters_exact(&store, "retrying the orchestration");
    store.cancel(&CancelTarget::Orchestration(first), "enough", 10).expect("cancel");
    assert_counters_exact(&store, "cancel");
    // The newest orchestration is never pruned (its ids would be handed out again): add one.
    let newest = store.create_batch(&batch(vec![task("n", &[])]), 100, 3_600_000, 11).expect("create");
    assert_eq!(store.prune(i64::MAX, false).expect("prune").tasks.len(), 5);
    assert_counters_exact(&store, "prune");
    assert_eq!(
        kept_and_counted(&store).kept,
        [(newest.orchestration_id, "pending".to_owned(), 1)],
        "only the newest is left"
    );
}

#[test]
fn a_usage_limit_pauses_every_claim_until_it_ends_once() {
    use crate::usage_limit::{Pause, Warning};
    let (_dir, mut store) = open();
    store
        .create_batch(&batch(vec![task("a", &[]), task("b", &[]), task("c", &["a"])]), 100, 3_600_000, 1)
        .expect("create");
    let claims = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim");
    assert_eq!(claims.len(), 2);
    store.record_progress(claims[0].task.task_id, "one", claims[0].fence, None, Some("sess-a")).expect("progress");
    let pause = Pause { kind: Some("five_hour".into()), resets_at: Some(900), seen_at: 10, until: 1_000 };
    let error = TaskError { kind: ErrorKind::UsageLimit, message: "5-hour usage limit until 00:00".into() };
    let hit = Finish::UsageLimit { error: error.clone(), pause: pause.clone() };
    let warning = Warning {
        kind: Some("five_hour".into()),
        utilization: Some(0.92),
        surpassed_threshold: Some(0.9),
        resets_at: Some(900),
        seen_at: 10,
    };
    let stats = RunStats { usage_warning: Some(warning.clone()), ..RunStats::default() };
    let first = store.finish(claims[0].task.task_id, "one", claims[0].fence, &hit, &stats, 10).expect("finish");
    assert!(first.accepted);
    assert_eq!(first.status, Some(crate::model::TaskStatus::Pending));
    assert_eq!(first.pause_started, Some(pause.clone()), "the first refusal starts the pause");
    assert!(first.skipped.is_empty(), "nothing skipped");
    // A second refusal while paused (a longer one) lengthens it, and is not a new pause.
    let longer = Finish::UsageLimit { error, pause: Pause { until: 2_000, seen_at: 11, ..pause.clone() } };
    let second = store.finish(claims[1].task.task_id, "one", claims[1].fence, &longer, &RunStats::default(), 11);
    assert_eq!(second.expect("finish").pause_started, None);
    let a = store.task(&TaskRef::Identifier("a".into()), &here()).expect("a");
    assert_eq!((a.task.attempt, a.task.status), (0, crate::model::TaskStatus::Pending), "the attempt is not counted");
    let limits = store.usage_limits().expect("limits");
    assert_eq!(limits.paused_at(12).map(|p| p.until), Some(2_000));
    assert_eq!(limits.warning, Some(warning));
    // Nobody claims during the pause; the schedule wakes at its end.
    assert!(store.claim_ready("two", 4, 4, 30_000, 1_500).expect("claim").is_empty());
    let schedule = store.schedule(1_500).expect("schedule");
    assert_eq!((schedule.ready_now, schedule.paused_until, schedule.next_at), (false, Some(2_000), Some(2_000)));
    // A person's "try now" cuts it short; the first executor to look ends it, once.
    assert_eq!(store.resume_now(1_600).expect("resume").map(|p| p.until), Some(2_000));
    assert!(store.resume_now(1_600).expect("resume").is_none(), "nothing on to resume");
    assert!(store.schedule(1_600).expect("schedule").pause_over);
    assert!(store.end_pause(1_600).expect("end").is_some());
    assert!(store.end_pause(1_600).expect("end").is_none(), "ended once");
    let resumed = store.claim_ready("two", 4, 4, 30_000, 1_600).expect("claim");
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[0].task.task_identifier, "a", "oldest first");
    assert_eq!(resumed[0].resume_session.as_deref(), Some("sess-a"), "resumes its session");
    let events = store.events(&TaskRef::Identifier("a".to_owned()), &here()).expect("events");
    let limited = events.iter().find(|e| e.kind == "usage_limited").expect("usage_limited event");
    let detail = limited.detail.as_deref().unwrap_or("");
    assert!(detail.starts_with("usage limit (five_hour) until 1970-01-01T00:00:01.000Z"), "{detail}");
}

#[test]
fn a_usage_limit_pause_does_not_count_against_orchestration_deadlines() {
    use crate::usage_limit::Pause;
    let (_dir, mut store) = open();
    // A deadline of 100 ms from the start.
    store.create_batch(&batch(vec![task("a", &[])]), 100, 100, 1).expect("create");
    let claim = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim").pop().expect("a");
    let pause = Pause { kind: Some("five_hour".into()), resets_at: Some(990), seen_at: 10, until: 1_000 };
    let error = TaskError { kind: ErrorKind::UsageLimit, message: "5-hour usage limit".into() };
    let hit = Finish::UsageLimit { error, pause };
    store.finish(claim.task.task_id, "one", claim.fence, &hit, &RunStats::default(), 10).expect("finish");
    // Long past the deadline (102), the paused work is not cancelled, nor woken up for it.
    let schedule = store.schedule(500).expect("schedule");
    assert!(!schedule.deadline_passed);
    assert_eq!(schedule.next_at, Some(1_000), "the pause's end, not the deadline");
    assert!(store.expire_orchestrations(500).expect("expire").is_empty());
    // The pause lasted 990 ms: the deadline moves on by as much.
    assert!(store.end_pause(1_000).expect("end").is_some());
    assert!(!store.schedule(1_050).expect("schedule").deadline_passed, "102 + 990 = 1092 is still ahead");
    assert_eq!(store.schedule(1_050).expect("schedule").next_at, Some(1_092));
    assert!(store.schedule(1_100).expect("schedule").deadline_passed);
}

#[test]
fn a_dependent_reads_its_dependencies_results_and_the_settings_read_back() {
    let (_dir, mut store) = open();
    let schema = serde_json::json!({"type": "object", "required": ["answer"]});
    let mut structured = task("structured", &[]);
    std::sync::Arc::make_mut(&mut structured.settings).result_schema = Some(schema.clone());
    let mut dependent = task("dependent", &["structured", "long"]);
    std::sync::Arc::make_mut(&mut dependent.settings).include_dependency_results = false;
    store.create_batch(&batch(vec![structured, task("long", &[]), dependent]), 100, 3_600_000, 1).expect("create");
    let claims = store.claim_ready("me", 4, 4, 30_000, 2).expect("claim");
    assert_eq!(claims.len(), 2);
    let by_name = |name: &str| claims.iter().find(|c| c.task.task_identifier == name).expect("claimed");
    assert_eq!(by_name("structured").task.settings.result_schema, Some(schema));
    assert!(
        by_name("long").task.settings.include_dependency_results
            && by_name("long").task.settings.result_schema.is_none()
    );
    let (structured, long) = (by_name("structured"), by_name("long"));
    let with_json = RunStats { structured_result: Some(r#"{"answer":42}"#.to_owned()), ..RunStats::default() };
    let done = Finish::Completed { result: Some(r#"{"answer":42}"#.to_owned()) };
    store.finish(structured.task.task_id, "me", structured.fence, &done, &with_json, 3).expect("finish");
    let long_text = "é".repeat(usize::try_from(results::RESULT_READ_CHARS).expect("size") + 10);
    let done = Finish::Completed { result: Some(long_text) };
    store.finish(long.task.task_id, "me", long.fence, &done, &with_json, 3).expect("finish");

    let dependent = store.task(&TaskRef::Identifier("dependent".to_owned()), &here()).expect("dependent");
    assert!(!dependent.task.settings.include_dependency_results);
    let results = store.dependency_results(dependent.task.task_id).expect("read");
    let names: Vec<&str> = results.iter().map(|r| r.identifier.as_str()).collect();
    assert_eq!(names, ["structured", "long"], "by task id");
    assert_eq!(results[0].structured_result, Some(serde_json::json!({"answer": 42})));
    assert_eq!(results[0].result.as_deref(), Some(r#"{"answer":42}"#));
    // A long result is read only up to the bound, in characters.
    let read = results[1].result.as_deref().expect("text");
    assert_eq!(read.chars().count(), usize::try_from(results::RESULT_READ_CHARS).expect("size"));
    // Only a completion stores a structured result.
    let status = store.task(&TaskRef::Identifier("structured".to_owned()), &here()).expect("task");
    assert_eq!(status.task.structured_result, Some(serde_json::json!({"answer": 42})));
    assert!(store.dependency_results(status.task.task_id).expect("read").is_empty(), "no dependencies");
}

#[test]
fn a_failed_attempt_stores_no_structured_result() {
    let (_dir, mut store) = open();
    store.create_batch(&batch(vec![task("a", &[])]), 100, 3_600_000, 1).expect("create");
    let claim = store.claim_ready("me", 1, 1, 30_000, 2).expect("claim").pop().expect("a");
    let stats = RunStats { structured_result: Some(r#"{"answer":"many"}"#.to_owned()), ..RunStats::default() };
    let failed = Finish::Failed { error: TaskError::new(ErrorKind::StructuredResultInvalid, "no match") };
    store.finish(claim.task.task_id, "me", claim.fence, &failed, &stats, 3).expect("finish");
    let a = store.task(&TaskRef::Identifier("a".to_owned()), &here()).expect("a");
    assert_eq!(a.task.structured_result, None);
    assert_eq!(a.task.error.map(|e| e.kind), Some(ErrorKind::StructuredResultInvalid));
}

#[test]
fn the_wal_of_a_huge_batch_is_cut_back_once_checkpointed() {
    let (dir, mut store) = open();
    // One transaction of about 40 MB: the WAL has to hold all of it.
    let prompt = "p".repeat(8 * 1024);
    let tasks = (0..5000)
        .map(|i| {
            let mut t = task(&format!("t{i}"), &[]);
            t.prompt = prompt.clone();
            t
        })
        .collect();
    store.create_batch(&batch(tasks), 10_000, 3_600_000, 1).expect("created");
    let wal = dir.path().join("home/tasks.db-wal");
    let big = std::fs::metadata(&wal).expect("wal").len();
    assert!(big > 2 * WAL_SIZE_LIMIT as u64, "the batch went through the WAL: {big} bytes");
    // Once checkpointed, the next write starts the WAL over, and the file is cut back.
    store.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).expect("checkpoint");
    store.create_batch(&batch(vec![task("after", &[])]), 10_000, 3_600_000, 2).expect("created");
    let after = std::fs::metadata(&wal).expect("wal").len();
    assert!(after <= WAL_SIZE_LIMIT as u64, "cut back to the limit: {after} bytes");
}
