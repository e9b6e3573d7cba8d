//! Budgets in the store, against a real SQLite file: the finish that records a cost skips what
//! the spent budget keeps from starting, the claim gives each attempt what is left and guards
//! against anything that slipped into line, and a raise carries on. Two connections stand for
//! two processes on one database.

use super::*;
use crate::model::{ErrorKind, NewBatch, NewTask, OrchestrationStatus, Project, TaskError, TaskRef, TaskSettings};

fn here() -> Project {
    Project::from_stored("/".to_owned())
}

fn task(identifier: &str, deps: &[&str]) -> NewTask {
    NewTask {
        identifier: identifier.to_owned(),
        prompt: format!("do {identifier}"),
        depends_on: deps.iter().map(|d| TaskRef::parse(d)).collect(),
        settings: TaskSettings::for_tests().into(),
        project: here(),
    }
}

/// A new orchestration named `budgeted` with a budget of `usd`.
fn budgeted(tasks: Vec<NewTask>, usd: f64) -> NewBatch {
    NewBatch {
        orchestration: Some("budgeted".to_owned()),
        new_orchestration: true,
        tasks,
        queued_by: None,
        scope: here(),
        budget_usd: Some(usd),
        default_budget_usd: None,
        isolation: None,
    }
}

fn open_two() -> (tempfile::TempDir, Store, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tasks.db");
    let one = Store::open(&path).expect("open");
    let two = Store::open(&path).expect("open again");
    (dir, one, two)
}

fn done() -> Finish {
    Finish::Completed { result: Some("ok".to_owned()) }
}

fn costing(usd: f64) -> RunStats {
    RunStats { cost_usd: usd, ..RunStats::default() }
}

fn status_of(store: &mut Store, identifier: &str) -> (TaskStatus, Option<ErrorKind>) {
    let detail = store.task(&TaskRef::Identifier(identifier.to_owned()), &here()).expect("task");
    (detail.task.status, detail.task.error.map(|e| e.kind))
}

#[test]
fn the_finish_that_spends_the_budget_skips_what_has_not_started_and_leaves_running_work_alone() {
    let (_dir, mut one, mut two) = open_two();
    // a and b run side by side; c waits for a; d is ready but beyond the cap of two.
    let created = one
        .create_batch(
            &budgeted(vec![task("a", &[]), task("b", &[]), task("c", &["a"]), task("d", &[])], 1.0),
            100,
            3_600_000,
            1,
        )
        .expect("create");
    let a = one.claim_ready("one", 2, 1, 30_000, 2).expect("claim").pop().expect("a");
    let b = two.claim_ready("two", 2, 1, 30_000, 2).expect("claim").pop().expect("b");
    assert_eq!((a.max_budget_usd, b.max_budget_usd), (Some(1.0), Some(1.0)), "each gets what is left");

    let finished = one.finish(a.task.task_id, "one", a.fence, &done(), &costing(1.05), 3).expect("finish");
    assert!(finished.accepted);
    assert_eq!(finished.skipped.len(), 2, "c (just promoted) and d: {finished:?}");
    assert!(finished.orchestration_finished.is_none(), "b still runs");
    for name in ["c", "d"] {
        assert_eq!(status_of(&mut two, name), (TaskStatus::Skipped, Some(ErrorKind::BudgetExhausted)), "{name}");
    }
    let detail = two.task(&TaskRef::Identifier("d".to_owned()), &here()).expect("d");
    let message = detail.task.error.expect("an error").message;
    assert!(message.contains("$1.05 of $1.00"), "{message}");
    assert_eq!(status_of(&mut two, "b").0, TaskStatus::Running, "running work is not killed");
    assert!(two.claim_ready("two", 4, 4, 30_000, 4).expect("claim").is_empty(), "nothing more starts anywhere");

    let last = two.finish(b.task.task_id, "two", b.fence, &done(), &costing(0.1), 5).expect("finish");
    let end = last.orchestration_finished.expect("b's end finished it");
    assert_eq!(end.status, OrchestrationStatus::Failed);
    let summary = one.orchestration_summary(created.orchestration_id).expect("summary");
    assert_eq!((summary.budget_usd, summary.budget_stopped), (Some(1.0), 2));
    let message = crate::budget::exhausted_message(&summary).expect("a message");
    assert!(message.contains("$1.15 of $1.00"), "{message}");
}

#[test]
fn an_attempt_is_capped_by_what_is_left_and_by_its_own_limit() {
    let (_dir, mut store, _) = open_two();
    let own = NewTask {
        settings: TaskSettings { max_budget_usd: Some(0.3), ..TaskSettings::for_tests() }.into(),
        ..task("own", &["first"])
    };
    let lots = NewTask {
        settings: TaskSettings { max_budget_usd: Some(5.0), ..TaskSettings::for_tests() }.into(),
        ..task("lots", &["first"])
    };
    store.create_batch(&budgeted(vec![task("first", &[]), own, lots], 1.0), 100, 3_600_000, 1).expect("create");
    let first = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim").pop().expect("first");
    assert_eq!(first.max_budget_usd, Some(1.0));
    store.finish(first.task.task_id, "one", first.fence, &done(), &costing(0.4 + 0.4), 3).expect("finish");
    let claims = store.claim_ready("one", 4, 4, 30_000, 4).expect("claim");
    let caps: Vec<(&str, Option<f64>)> =
        claims.iter().map(|c| (c.task.task_identifier.as_str(), c.max_budget_usd)).collect();
    assert_eq!(caps, [("own", Some(0.2)), ("lots", Some(0.2))], "what is left, not the float noise of 1 - 0.8");

    // Without a budget the task's own limit passes through.
    let mut free = budgeted(vec![task("free", &[])], 1.0);
    (free.orchestration, free.budget_usd) = (None, None);
    std::sync::Arc::make_mut(&mut free.tasks[0].settings).max_budget_usd = Some(0.7);
    store.create_batch(&free, 100, 3_600_000, 5).expect("create");
    let claimed = store.claim_ready("one", 4, 4, 30_000, 6).expect("claim").pop().expect("free");
    assert_eq!(claimed.max_budget_usd, Some(0.7));
}

#[test]
fn a_stop_at_the_budget_s_cap_is_budget_exhausted_and_at_the_task_s_own_is_max_budget() {
    let (_dir, mut store, _) = open_two();
    let own = NewTask {
        settings: TaskSettings { max_budget_usd: Some(0.1), ..TaskSettings::for_tests() }.into(),
        ..task("own", &[])
    };
    store.create_batch(&budgeted(vec![task("spender", &[]), own], 1.0), 100, 3_600_000, 1).expect("create");
    let claims = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim");
    let stopped = |message: &str| Finish::Failed { error: TaskError::new(ErrorKind::MaxBudget, message) };
    for claim in &claims {
        store
            .finish(claim.task.task_id, "one", claim.fence, &stopped("Reached maximum budget"), &costing(0.1), 3)
            .expect("finish");
    }
    assert_eq!(status_of(&mut store, "own"), (TaskStatus::Failed, Some(ErrorKind::MaxBudget)));
    let spender = store.task(&TaskRef::Identifier("spender".to_owned()), &here()).expect("spender").task;
    assert_eq!(spender.status, TaskStatus::Failed);
    let error = spender.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::BudgetExhausted, "the budget's remainder was its cap");
    assert!(error.message.contains("Reached maximum budget"), "{}", error.message);
}

#[test]
fn the_claim_guards_against_a_task_that_slipped_into_line_after_the_budget_was_spent() {
    let (_dir, mut one, mut two) = open_two();
    one.create_batch(&budgeted(vec![task("a", &[]), task("b", &[])], 0.5), 100, 3_600_000, 1).expect("create");
    let a = one.claim_ready("one", 1, 1, 30_000, 2).expect("claim").pop().expect("a");
    one.finish(a.task.task_id, "one", a.fence, &done(), &costing(0.6), 3).expect("finish");
    assert_eq!(status_of(&mut two, "b").1, Some(ErrorKind::BudgetExhausted));
    // As if another process had put b back in line without looking at the budget.
    two.conn
        .execute(
            "UPDATE tasks SET status = 'pending', error_kind = NULL, error_message = NULL WHERE task_identifier = 'b'",
            [],
        )
        .expect("slip b into line");
    assert!(two.claim_ready("two", 4, 4, 30_000, 4).expect("claim").is_empty(), "the guard holds");
    assert_eq!(status_of(&mut one, "b"), (TaskStatus::Skipped, Some(ErrorKind::BudgetExhausted)));
}

#[test]
fn a_retry_in_a_spent_orchestration_is_refused_and_a_raise_carries_on() {
    let (_dir, mut store, mut other) = open_two();
    let created = store
        .create_batch(&budgeted(vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])], 0.5), 100, 3_600_000, 1)
        .expect("create");
    let id = created.orchestration_id;
    let a = store.claim_ready("one", 4, 4, 30_000, 2).expect("claim").pop().expect("a");
    store.finish(a.task.task_id, "one", a.fence, &done(), &costing(0.5), 3).expect("finish");
    assert_eq!(status_of(&mut store, "c"), (TaskStatus::Skipped, Some(ErrorKind::BudgetExhausted)));

    let refused = store.retry_orchestration(id, 4).expect_err("spent");
    assert!(refused.to_string().contains(&crate::budget::how_to_raise(id)), "{refused}");
    let too_low = store.set_budget(id, 0.5, 4).expect_err("spent at once");
    assert!(too_low.to_string().contains("would be spent at once"), "{too_low}");
    // A task cannot join it either, unless the budget comes with it.
    let mut join = budgeted(vec![task("d", &[])], 0.5);
    (join.new_orchestration, join.budget_usd) = (false, None);
    let refused = store.create_batch(&join, 100, 3_600_000, 4).expect_err("would never start");
    assert!(refused.to_string().contains("orchestration_max_budget_usd"), "{refused}");

    let raise = other.set_budget(id, 2.0, 5).expect("raise");
    let reopened: Vec<(&str, TaskStatus)> =
        raise.tasks.iter().map(|t| (t.task_identifier.as_str(), t.status)).collect();
    assert_eq!(reopened, [("b", TaskStatus::Pending), ("c", TaskStatus::Waiting)]);
    assert_eq!(other.orchestration_summary(id).expect("summary").status, OrchestrationStatus::Running);
    let b = store.claim_ready("one", 4, 4, 30_000, 6).expect("claim").pop().expect("b runs");
    assert_eq!(b.task.task_identifier, "b");
    assert_eq!(b.max_budget_usd, Some(1.5));

    join.budget_usd = Some(3.0);
    store.create_batch(&join, 100, 3_600_000, 7).expect("joins, raising the budget");
    assert_eq!(store.orchestration_summary(id).expect("summary").budget_usd, Some(3.0));
}

#[test]
fn the_default_budget_is_for_new_orchestrations_only() {
    let (_dir, mut store, _) = open_two();
    let mut first = budgeted(vec![task("a", &[])], 1.0);
    (first.budget_usd, first.default_budget_usd) = (None, Some(4.0));
    let id = store.create_batch(&first, 100, 3_600_000, 1).expect("create").orchestration_id;
    assert_eq!(store.orchestration_summary(id).expect("summary").budget_usd, Some(4.0));
    let mut join = budgeted(vec![task("b", &[])], 1.0);
    (join.new_orchestration, join.budget_usd, join.default_budget_usd) = (false, None, Some(9.0));
    store.create_batch(&join, 100, 3_600_000, 2).expect("join");
    assert_eq!(store.orchestration_summary(id).expect("summary").budget_usd, Some(4.0), "kept its own");
}
