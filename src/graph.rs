//! Pure dependency logic, with no IO: checking a batch of new tasks (duplicate identifiers,
//! cycles), deciding a new task's first state from its dependencies, what becomes ready when a
//! task completes, what must be skipped when one fails, what a retry of a task or of a whole
//! orchestration puts back in line, and an orchestration's state.
//!
//! The store loads the few rows these functions need inside its transaction, asks, and writes the
//! answer; everything here can be stepped by hand in unit tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::model::{Counters, NewTask, OrchestrationStatus, TaskId, TaskRef, TaskStatus};

/// The longest task identifier.
pub const MAX_IDENTIFIER_LEN: usize = 100;

/// Checks that an identifier is 1 to 100 letters, digits, `_`, `-` or `.`.
pub fn check_identifier(identifier: &str) -> Result<(), String> {
    if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER_LEN {
        return Err(format!("task identifier {} must be 1 to {MAX_IDENTIFIER_LEN} characters long", shown(identifier)));
    }
    if let Some(bad) = identifier.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!(
            "task identifier {identifier:?} contains {bad:?}: use only letters, digits, '_', '-' and '.'"
        ));
    }
    if identifier.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("task identifier {identifier:?} is all digits, which reads as a task id: add a letter"));
    }
    Ok(())
}

/// What is wrong with a batch, found before anything is stored.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("identifier {0:?} is used by more than one task in the batch: identifiers must be unique")]
    DuplicateIdentifier(String),
    #[error("dependency cycle: {} (each depends on the next); remove one of these depends_on entries", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Checks a batch and returns the order to insert it in (every in-batch dependency before its
/// dependents). Dependencies that name no task of the batch are left for the store to resolve.
pub fn plan_batch(tasks: &[NewTask]) -> Result<Vec<usize>, BatchError> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        if index.insert(task.identifier.as_str(), i).is_some() {
            return Err(BatchError::DuplicateIdentifier(task.identifier.clone()));
        }
    }
    let edges: Vec<Vec<usize>> = tasks
        .iter()
        .map(|task| {
            let mut deps: Vec<usize> = task
                .depends_on
                .iter()
                .filter_map(|dep| match dep {
                    TaskRef::Identifier(name) => index.get(name.as_str()).copied(),
                    TaskRef::Id(_) => None,
                })
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect();

    // Depth-first search with colours; the grey stack names the cycle when one is found.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; tasks.len()];
    let mut order = Vec::with_capacity(tasks.len());
    for root in 0..tasks.len() {
        if colour[root] != Colour::White {
            continue;
        }
        // Stack of (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = edges[node].get(*next) {
                *next += 1;
                match colour[dep] {
                    Colour::White => {
                        colour[dep] = Colour::Grey;
                        stack.push((dep, 0));
                    }
                    Colour::Grey => {
                        let start = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[start..].iter().map(|&(n, _)| tasks[n].identifier.clone()).collect();
                        path.push(tasks[dep].identifier.clone());
                        // The stack runs from dependent to dependency; name it that way round.
                        return Err(BatchError::Cycle(path));
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// The first state of a new task, given the states of its dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitialState {
    /// No dependency, or all completed: ready (after `wait_after_dependencies`).
    Pending,
    /// Some dependency has not completed yet.
    Waiting,
    /// A dependency failed, was cancelled or skipped: this task can never run.
    Skipped { dependency: String, dependency_status: TaskStatus },
}

/// A value a caller gave, quoted for a message: whole when short, else its start and its size,
/// so that a message never repeats megabytes of input.
pub fn shown(text: &str) -> String {
    const SHOWN_CHARS: usize = 60;
    match text.char_indices().nth(SHOWN_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
    }
}

/// Decides a new task's first state. `deps` holds each dependency's identifier and state.
pub fn initial_state<'a>(deps: impl IntoIterator<Item = (&'a str, TaskStatus)>) -> InitialState {
    let mut all_completed = true;
    for (identifier, status) in deps {
        if status.blocks_dependents() {
            return InitialState::Skipped { dependency: identifier.to_owned(), dependency_status: status };
        }
        all_completed &= status == TaskStatus::Completed;
    }
    if all_completed { InitialState::Pending } else { InitialState::Waiting }
}

/// The candidates closest to an unknown name, best first, at most `limit`: those that contain it
/// or share a long prefix, then those within a small edit distance, then the rest in order.
pub fn suggest<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>, limit: usize) -> Vec<String> {
    let unknown_lower = unknown.to_ascii_lowercase();
    let mut scored: Vec<(usize, usize, &str)> = candidates
        .into_iter()
        .enumerate()
        .map(|(order, candidate)| {
            let lower = candidate.to_ascii_lowercase();
            let score = if lower.contains(&unknown_lower) || unknown_lower.contains(&lower) {
                0
            } else {
                1 + edit_distance(&unknown_lower, &lower)
            };
            (score, order, candidate)
        })
        .collect();
    scored.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    for (_, _, candidate) in scored {
        if out.len() == limit {
            break;
        }
        if !out.iter().any(|c| c == candidate) {
            out.push(candidate.to_owned());
        }
    }
    out
}

/// Levenshtein distance over bytes (identifiers are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// One task that a retry puts back in line: its state before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reopening {
    pub task_id: TaskId,
    /// `failed`, `cancelled` or `skipped`.
    pub was: TaskStatus,
    /// `pending` or `waiting`.
    pub status: TaskStatus,
}

/// The tasks of one orchestration and their edges: what the store loads to answer
/// "what becomes ready" and "what must be skipped".
#[derive(Clone, Debug, Default)]
pub struct Graph {
    status: BTreeMap<TaskId, TaskStatus>,
    /// task -> the tasks it depends on.
    depends_on: HashMap<TaskId, Vec<TaskId>>,
    /// task -> the tasks that depend on it.
    dependents: HashMap<TaskId, Vec<TaskId>>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    pub fn add_task(&mut self, task_id: TaskId, status: TaskStatus) {
        self.status.insert(task_id, status);
    }

    /// Records that `task_id` depends on `dependency`.
    pub fn add_edge(&mut self, task_id: TaskId, dependency: TaskId) {
        self.depends_on.entry(task_id).or_default().push(dependency);
        self.dependents.entry(dependency).or_default().push(task_id);
    }

    pub fn status(&self, task_id: TaskId) -> Option<TaskStatus> {
        self.status.get(&task_id).copied()
    }

    /// The waiting dependents of `completed` whose dependencies have now all completed
    /// (with `completed` counted as completed whatever the graph says).
    pub fn ready_after_completion(&self, completed: TaskId) -> Vec<TaskId> {
        let is_done = |id: TaskId| id == completed || self.status(id) == Some(TaskStatus::Completed);
        let mut ready: Vec<TaskId> = self
            .dependents
            .get(&completed)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&dependent| self.status(dependent) == Some(TaskStatus::Waiting))
            .filter(|dependent| self.depends_on.get(dependent).into_iter().flatten().all(|&dep| is_done(dep)))
            .collect();
        ready.sort_unstable();
        ready.dedup();
        ready
    }

    /// Every task that depends on `root`, transitively, and has not finished: these can never
    /// run once `root` failed, was cancelled or skipped. Sorted by id.
    pub fn unfinished_descendants(&self, root: TaskId) -> Vec<TaskId> {
        let mut seen: HashSet<TaskId> = HashSet::new();
        let mut out = BTreeSet::new();
        let mut frontier = vec![root];
        while let Some(node) = frontier.pop() {
            for &dependent in self.dependents.get(&node).into_iter().flatten() {
                if seen.insert(dependent) {
                    if self.status(dependent).is_some_and(|s| !s.is_terminal()) {
                        out.insert(dependent);
                    }
                    frontier.push(dependent);
                }
            }
        }
        out.into_iter().collect()
    }

    /// The skipped descendants that a retry of `root` reopens: those reachable from it through
    /// skipped tasks whose every dependency is then completed, unfinished, `root` itself or
    /// reopened too. A task that also depends on another failed task stays skipped. Sorted by id.
    pub fn reopened_by_retry(&self, root: TaskId) -> Vec<TaskId> {
        let candidates: BTreeSet<TaskId> = self.skipped_descendants(root).into_iter().collect();
        self.reopenable(&candidates, Some(root)).into_iter().collect()
    }

    /// What raising an orchestration's budget puts back in line: each of `stopped` (the tasks
    /// the budget kept from starting or stopped) and the skipped tasks reachable from them
    /// through skipped tasks, as far as every dependency of each is then completed, unfinished or
    /// reopened too (a task that also depends on one that failed for another reason stays as it
    /// is). Each becomes `pending` when all its dependencies completed, else `waiting`. Sorted by
    /// id, which is dependency order.
    pub fn reopened_by_raise(&self, stopped: &[TaskId]) -> Vec<Reopening> {
        let mut candidates: BTreeSet<TaskId> = BTreeSet::new();
        for &task_id in stopped {
            if self.status(task_id).is_some_and(TaskStatus::blocks_dependents) {
                candidates.insert(task_id);
                candidates.extend(self.skipped_descendants(task_id));
            }
        }
        let reopened = self.reopenable(&candidates, None);
        reopened
            .iter()
            .map(|&task_id| {
                let deps = self.depends_on.get(&task_id).into_iter().flatten();
                let all_completed = deps
                    .into_iter()
                    .all(|&dep| !reopened.contains(&dep) && self.status(dep) == Some(TaskStatus::Completed));
                Reopening {
                    task_id,
                    was: self.status(task_id).unwrap_or(TaskStatus::Skipped),
                    status: if all_completed { TaskStatus::Pending } else { TaskStatus::Waiting },
                }
            })
            .collect()
    }

    /// The candidates that can run again, given that `assumed` does (a task being retried):
    /// those whose every dependency is `assumed`, reopened too, or in a
    /// state that does not block dependents, found by repeating until nothing changes.
    fn reopenable(&self, candidates: &BTreeSet<TaskId>, assumed: Option<TaskId>) -> BTreeSet<TaskId> {
        let mut reopened: BTreeSet<TaskId> = BTreeSet::new();
        loop {
            let before = reopened.len();
            for &candidate in candidates {
                if reopened.contains(&candidate) {
                    continue;
                }
                let runnable = self.depends_on.get(&candidate).into_iter().flatten().all(|&dep| {
                    Some(dep) == assumed
                        || reopened.contains(&dep)
                        || self.status(dep).is_some_and(|s| !s.blocks_dependents())
                });
                if runnable {
                    reopened.insert(candidate);
                }
            }
            if reopened.len() == before {
                return reopened;
            }
        }
    }

    /// What a retry of the whole orchestration does: every failed, cancelled or skipped task goes
    /// back in line, with its new state decided from its dependencies as they will be after the
    /// retry: `pending` when every one of them completed, else `waiting` (a dependency that is
    /// retried too, running or still waiting has not completed). Completed and unfinished tasks
    /// are left alone. Sorted by id, which is dependency order: a task is stored after its
    /// dependencies.
    pub fn retry_all(&self) -> Vec<Reopening> {
        self.status
            .iter()
            .filter(|(_, status)| status.blocks_dependents())
            .map(|(&task_id, &was)| {
                let all_completed = self
                    .depends_on
                    .get(&task_id)
                    .into_iter()
                    .flatten()
                    .all(|&dep| self.status(dep) == Some(TaskStatus::Completed));
                let status = if all_completed { TaskStatus::Pending } else { TaskStatus::Waiting };
                Reopening { task_id, was, status }
            })
            .collect()
    }

    /// Every skipped task reachable from `root` through skipped tasks. Sorted by id.
    pub fn skipped_descendants(&self, root: TaskId) -> Vec<TaskId> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![root];
        while let Some(node) = frontier.pop() {
            for &dependent in self.dependents.get(&node).into_iter().flatten() {
                if self.status(dependent) == Some(TaskStatus::Skipped) && out.insert(dependent) {
                    frontier.push(dependent);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// An orchestration's state from its counters. `cancel_requested` is set once the orchestration
/// itself was cancelled (by a caller or its timeout).
pub fn orchestration_status(counters: &Counters, cancel_requested: bool) -> OrchestrationStatus {
    let started = counters.running + counters.completed + counters.failed + counters.cancelled + counters.skipped;
    if counters.unfinished() > 0 {
        return if started == 0 { OrchestrationStatus::Pending } else { OrchestrationStatus::Running };
    }
    if counters.completed == counters.total {
        OrchestrationStatus::Completed
    } else if cancel_requested || (counters.cancelled > 0 && counters.failed == 0) {
        OrchestrationStatus::Cancelled
    } else {
        OrchestrationStatus::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskSettings;

    fn task(identifier: &str, deps: &[&str]) -> NewTask {
        NewTask {
            identifier: identifier.to_owned(),
            prompt: "p".to_owned(),
            depends_on: deps.iter().map(|d| TaskRef::parse(d)).collect(),
            settings: TaskSettings::for_tests().into(),
            project: crate::model::Project::from_stored("/".to_owned()),
        }
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("build_api-v1.2").is_ok());
        assert!(check_identifier("").is_err());
        assert!(check_identifier(&"a".repeat(101)).is_err());
        assert!(check_identifier(&"a".repeat(100)).is_ok());
        assert!(check_identifier("has space").is_err_and(|e| e.contains("' '")));
        assert!(check_identifier("42").is_err());
    }

    #[test]
    fn plan_orders_dependencies_first() {
        let batch = [task("d", &["b", "c"]), task("b", &["a"]), task("c", &["a"]), task("a", &[])];
        let order = plan_batch(&batch).expect("acyclic");
        let pos = |name: &str| order.iter().position(|&i| batch[i].identifier == name).expect("in order");
        assert!(pos("a") < pos("b") && pos("a") < pos("c"));
        assert!(pos("b") < pos("d") && pos("c") < pos("d"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn plan_names_the_cycle() {
        let batch = [task("a", &["c"]), task("b", &["a"]), task("c", &["b"]), task("x", &[])];
        match plan_batch(&batch) {
            Err(BatchError::Cycle(path)) => {
                assert_eq!(path.first(), path.last());
                assert_eq!(path.len(), 4, "{path:?}");
                let message = BatchError::Cycle(path).to_string();
                assert!(message.contains("a -> c -> b -> a"), "{message}");
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        assert_eq!(plan_batch(&[task("self", &["self"])]), Err(BatchError::Cycle(vec!["self".into(), "self".into()])));
    }

    #[test]
    fn plan_refuses_duplicates_and_leaves_external_refs() {
        assert_eq!(plan_batch(&[task("a", &[]), task("a", &[])]), Err(BatchError::DuplicateIdentifier("a".into())));
        assert!(plan_batch(&[task("a", &["elsewhere", "#7"])]).is_ok());
    }

    #[test]
    fn long_values_are_shown_cut_with_their_size() {
        assert_eq!(shown("build"), "\"build\"");
        let long = "x".repeat(4 * 1024 * 1024);
        let message = check_identifier(&long).expect_err("too long");
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(4194304 bytes)"), "{message}");
        assert!(shown(&"é".repeat(100)).ends_with("... (200 bytes)"), "cut at a character boundary");
    }

    #[test]
    fn suggestions_rank_close_names_first() {
        let names = ["deploy", "build_api", "build_ui", "test"];
        assert_eq!(suggest("build", names, 2), vec!["build_api", "build_ui"]);
        assert_eq!(suggest("tset", names, 1), vec!["test"]);
        assert_eq!(suggest("x", names, 10).len(), 4);
    }

    #[test]
    fn initial_states() {
        assert_eq!(initial_state([]), InitialState::Pending);
        assert_eq!(initial_state([("a", TaskStatus::Completed)]), InitialState::Pending);
        assert_eq!(initial_state([("a", TaskStatus::Completed), ("b", TaskStatus::Running)]), InitialState::Waiting);
        assert_eq!(
            initial_state([("a", TaskStatus::Running), ("b", TaskStatus::Failed)]),
            InitialState::Skipped { dependency: "b".into(), dependency_status: TaskStatus::Failed }
        );
    }

    fn diamond() -> Graph {
        // 1 <- 2, 1 <- 3, {2,3} <- 4, and 5 on its own.
        let mut g = Graph::new();
        g.add_task(1, TaskStatus::Running);
        for id in [2, 3, 4] {
            g.add_task(id, TaskStatus::Waiting);
        }
        g.add_task(5, TaskStatus::Running);
        g.add_edge(2, 1);
        g.add_edge(3, 1);
        g.add_edge(4, 2);
        g.add_edge(4, 3);
        g
    }

    #[test]
    fn completion_readies_only_fully_satisfied_dependents() {
        let mut g = diamond();
        assert_eq!(g.ready_after_completion(1), vec![2, 3]);
        g.add_task(1, TaskStatus::Completed);
        g.add_task(2, TaskStatus::Completed);
        assert_eq!(g.ready_after_completion(2), Vec::<TaskId>::new(), "3 not done yet");
        g.add_task(3, TaskStatus::Running);
        assert_eq!(g.ready_after_completion(3), vec![4]);
    }

    #[test]
    fn failure_skips_descendants_only() {
        let g = diamond();
        assert_eq!(g.unfinished_descendants(1), vec![2, 3, 4]);
        assert_eq!(g.unfinished_descendants(5), Vec::<TaskId>::new());
        let mut g = diamond();
        g.add_task(2, TaskStatus::Skipped);
        g.add_task(3, TaskStatus::Skipped);
        g.add_task(4, TaskStatus::Skipped);
        assert_eq!(g.skipped_descendants(1), vec![2, 3, 4]);
        assert_eq!(g.reopened_by_retry(1), vec![2, 3, 4]);
        // A task that also depends on another failed task stays skipped.
        g.add_task(6, TaskStatus::Failed);
        g.add_edge(4, 6);
        assert_eq!(g.reopened_by_retry(1), vec![2, 3]);
    }

    #[test]
    fn retrying_everything_reopens_in_dependency_order() {
        // 1 failed <- 2 skipped <- 4 skipped -> 3 skipped -> 1; 5 cancelled while waiting on 6,
        // which completed; 7 completed; 8 running <- 9 skipped, which also depends on 1.
        let mut g = diamond();
        g.add_task(1, TaskStatus::Failed);
        for id in [2, 3, 4] {
            g.add_task(id, TaskStatus::Skipped);
        }
        g.add_task(5, TaskStatus::Cancelled);
        g.add_task(6, TaskStatus::Completed);
        g.add_edge(5, 6);
        g.add_task(7, TaskStatus::Completed);
        g.add_task(8, TaskStatus::Running);
        g.add_task(9, TaskStatus::Skipped);
        g.add_edge(9, 8);
        g.add_edge(9, 1);
        let reopen = |task_id, was, status| Reopening { task_id, was, status };
        use TaskStatus::{Cancelled, Failed, Pending, Skipped, Waiting};
        assert_eq!(
            g.retry_all(),
            vec![
                reopen(1, Failed, Pending),
                reopen(2, Skipped, Waiting),
                reopen(3, Skipped, Waiting),
                reopen(4, Skipped, Waiting),
                reopen(5, Cancelled, Pending),
                reopen(9, Skipped, Waiting),
            ]
        );
    }

    #[test]
    fn retrying_everything_waits_for_a_retried_dependency() {
        // A task cancelled before its dependency failed waits for that dependency's new run.
        let mut g = Graph::new();
        g.add_task(1, TaskStatus::Failed);
        g.add_task(2, TaskStatus::Cancelled);
        g.add_edge(2, 1);
        let states: Vec<_> = g.retry_all().iter().map(|r| (r.task_id, r.status)).collect();
        assert_eq!(states, vec![(1, TaskStatus::Pending), (2, TaskStatus::Waiting)]);
    }

    #[test]
    fn a_raise_reopens_what_the_budget_stopped_and_what_waited_on_it() {
        // 1 completed; 2 (on 1) was stopped by the budget; 3 (on 2) was skipped because of it;
        // 4 (on 1) was kept from starting; 5 failed on its own, and 6 (on 4 and 5) waits on both.
        let mut g = Graph::new();
        g.add_task(1, TaskStatus::Completed);
        g.add_task(2, TaskStatus::Failed);
        g.add_task(3, TaskStatus::Skipped);
        g.add_task(4, TaskStatus::Skipped);
        g.add_task(5, TaskStatus::Failed);
        g.add_task(6, TaskStatus::Skipped);
        g.add_edge(2, 1);
        g.add_edge(3, 2);
        g.add_edge(4, 1);
        g.add_edge(6, 4);
        g.add_edge(6, 5);
        let plan: Vec<_> = g.reopened_by_raise(&[2, 4]).iter().map(|r| (r.task_id, r.was, r.status)).collect();
        assert_eq!(
            plan,
            vec![
                (2, TaskStatus::Failed, TaskStatus::Pending),
                (3, TaskStatus::Skipped, TaskStatus::Waiting),
                (4, TaskStatus::Skipped, TaskStatus::Pending),
            ],
            "6 still depends on the failed 5"
        );
        // A stopped task whose own dependency failed for another reason stays as it is.
        let mut g = Graph::new();
        g.add_task(1, TaskStatus::Failed);
        g.add_task(2, TaskStatus::Skipped);
        g.add_edge(2, 1);
        assert_eq!(g.reopened_by_raise(&[2]), Vec::new());
        // A task that is no longer stopped (already reopened) is not touched.
        let mut g = Graph::new();
        g.add_task(1, TaskStatus::Pending);
        assert_eq!(g.reopened_by_raise(&[1]), Vec::new());
    }

    #[test]
    fn retrying_everything_finds_nothing_in_a_healthy_graph() {
        assert_eq!(diamond().retry_all(), Vec::new());
        let mut done = diamond();
        for id in 1..=5 {
            done.add_task(id, TaskStatus::Completed);
        }
        assert_eq!(done.retry_all(), Vec::new());
    }

    #[test]
    fn orchestration_states() {
        let mut c = Counters::default();
        c.add(TaskStatus::Pending, 2);
        assert_eq!(orchestration_status(&c, false), OrchestrationStatus::Pending);
        c.add(TaskStatus::Running, 1);
        assert_eq!(orchestration_status(&c, false), OrchestrationStatus::Running);
        let mut done = Counters::default();
        done.add(TaskStatus::Completed, 3);
        assert_eq!(orchestration_status(&done, false), OrchestrationStatus::Completed);
        done.add(TaskStatus::Skipped, 1);
        done.add(TaskStatus::Failed, 1);
        assert_eq!(orchestration_status(&done, false), OrchestrationStatus::Failed);
        let mut cancelled = Counters::default();
        cancelled.add(TaskStatus::Completed, 1);
        cancelled.add(TaskStatus::Cancelled, 1);
        assert_eq!(orchestration_status(&cancelled, false), OrchestrationStatus::Cancelled);
        cancelled.add(TaskStatus::Failed, 1);
        assert_eq!(orchestration_status(&cancelled, true), OrchestrationStatus::Cancelled);
    }
}
