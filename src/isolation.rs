//! Isolation, pure: a task that asks for `isolation: "worktree"` runs in a git worktree of its
//! own, on its own branch, started from the orchestration's base commit (no dependencies), its
//! dependency's result (one), or the merge of its dependencies' results (several). This module
//! holds the settings, what is recorded of a task's worktree and an orchestration's integration,
//! and the decisions: where a task's worktree goes, which directory of it the task runs in, what
//! it starts from, and the task that resolves conflicting results. `executor::isolation` does
//! the work through `git`.

use std::path::{Path, PathBuf};

use crate::model::{OrchestrationId, TaskId};

/// Where a task runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In its working directory, as it is.
    #[default]
    None,
    /// In a git worktree of its own.
    Worktree,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::Worktree => "worktree",
        }
    }

    pub fn parse(text: &str) -> Option<Isolation> {
        match text {
            "none" => Some(Isolation::None),
            "worktree" => Some(Isolation::Worktree),
            _ => None,
        }
    }
}

/// What a task does when the results of its dependencies conflict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// Start on the conflicted merge, told to resolve it first.
    #[default]
    Resolve,
    /// Fail with `merge_conflict`, the files named.
    Fail,
}

impl OnConflict {
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Resolve => "resolve",
            OnConflict::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<OnConflict> {
        match text {
            "resolve" => Some(OnConflict::Resolve),
            "fail" => Some(OnConflict::Fail),
            _ => None,
        }
    }
}

/// The base of a batch's isolated tasks as found before they are stored, and the orchestration
/// names the repository's branches use already (see [`choose_label`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBase {
    pub base: Base,
    pub labels_in_use: Vec<String>,
}

/// The base of an orchestration's isolated tasks, found when its first isolated task is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    /// The top of the repository's main work tree (the user's checkout).
    pub repository: String,
    /// As asked (`HEAD` unless given).
    pub base_ref: String,
    /// As resolved then.
    pub base_commit: String,
    /// The integration branch is merged into the checkout's current branch at the end.
    pub merge_when_done: bool,
}

/// A task's worktree as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskWorktree {
    /// `None` before it was made and once it was removed.
    pub path: Option<String>,
    pub branch: Option<String>,
    pub start_commit: Option<String>,
    /// Files the merge of its dependencies' results left with conflict markers.
    pub conflicts: Vec<String>,
    pub result_commit: Option<String>,
    pub diffstat: Option<String>,
}

/// An orchestration's isolation as recorded: its base and its integration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrchestrationIsolation {
    pub base: Base,
    pub integration: IntegrationState,
    /// The integration branch (`claude-worker/<orchestration>`).
    pub branch: String,
    pub integration_commit: Option<String>,
    /// Merged into the checkout, or why not.
    pub note: Option<String>,
}

/// Where an orchestration's integration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationState {
    /// Not ended yet, or ended and not integrated yet (a task that resolves conflicting results
    /// was added: it is pending again).
    Pending,
    /// Its results are on the integration branch.
    Done,
    /// It ended without completing: nothing integrated.
    Abandoned,
}

impl IntegrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationState::Pending => "pending",
            IntegrationState::Done => "done",
            IntegrationState::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<IntegrationState> {
        [Self::Pending, Self::Done, Self::Abandoned].into_iter().find(|s| s.as_str() == text)
    }
}

/// The name an orchestration's branches are under: its id, then its name when it has one
/// (`7-refactor`), so that a name used again after a prune never finds an old branch.
pub fn orchestration_label(orchestration_id: OrchestrationId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{orchestration_id}-{name}"),
        None => orchestration_id.to_string(),
    }
}

/// The name a new orchestration's branches go under: [`orchestration_label`], or with `-2`,
/// `-3`, ... added when a branch of the repository uses that name already (`in_use`, as
/// [`crate::git::Git::labels_in_use`] lists them: another claude-worker database on the same
/// repository numbers its orchestrations from 1 too).
pub fn choose_label(orchestration_id: OrchestrationId, name: Option<&str>, in_use: &[String]) -> String {
    let first = orchestration_label(orchestration_id, name);
    let free = |label: &String| !in_use.contains(&crate::git::safe_component(label));
    if free(&first) {
        return first;
    }
    let mut n = 2;
    loop {
        let label = format!("{first}-{n}");
        if free(&label) {
            return label;
        }
        n += 1;
    }
}

/// The label of a recorded orchestration: the one chosen when its base was recorded, or (recorded
/// before labels were kept) the one it had then.
pub fn recorded_label(orchestration_id: OrchestrationId, name: Option<&str>, stored: Option<String>) -> String {
    stored.unwrap_or_else(|| orchestration_label(orchestration_id, name))
}

/// The integration branch of an orchestration (see [`orchestration_label`]):
/// `claude-worker/<orchestration>/integration` (see `git::branch_name` for why not
/// `claude-worker/<orchestration>`).
pub fn integration_branch(label: &str) -> String {
    crate::git::branch_name(label, None)
}

/// A task's branch: `claude-worker/<orchestration>/tasks/<identifier>`.
pub fn task_branch(label: &str, identifier: &str) -> String {
    crate::git::branch_name(label, Some(identifier))
}

/// The directory of a task's worktree: one per task under the worktrees directory of the
/// database, named by ids (stable across attempts and unique), with the identifier for people.
pub fn worktree_path(root: &Path, orchestration_id: OrchestrationId, task_id: TaskId, identifier: &str) -> PathBuf {
    let safe: String = identifier
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .take(60)
        .collect();
    root.join(orchestration_id.to_string()).join(format!("{task_id}-{}", safe.trim_start_matches('.')))
}

/// The directory a task runs in inside its worktree: its working directory's place in the
/// repository (a task in `repo/backend` runs in `<worktree>/backend`). `None` when the working
/// directory is not inside the repository.
pub fn directory_in_worktree(repository: &Path, working_directory: &Path, worktree: &Path) -> Option<PathBuf> {
    let inside = working_directory.strip_prefix(repository).ok()?;
    Some(if inside.as_os_str().is_empty() { worktree.to_path_buf() } else { worktree.join(inside) })
}

/// What a task's worktree starts from: the base commit without dependencies, else the results
/// of its dependencies that have one (a dependency that ran without isolation left none: its
/// changes, if any, are in the checkout, not on a branch), in the order given.
pub fn start_points(base_commit: &str, dependency_results: &[Option<String>]) -> Vec<String> {
    let mut points: Vec<String> = Vec::new();
    for commit in dependency_results.iter().flatten() {
        if !points.contains(commit) {
            points.push(commit.clone());
        }
    }
    if points.is_empty() {
        points.push(base_commit.to_owned());
    }
    points
}

/// The note an answer gets when the checkout has changes that isolated tasks will not see.
pub fn dirty_note(repository: &str, base_commit: &str, dirty: &[String]) -> Option<String> {
    const SHOWN: usize = 5;
    if dirty.is_empty() {
        return None;
    }
    let mut files = dirty.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if dirty.len() > SHOWN {
        files.push_str(&format!(" and {} more", dirty.len() - SHOWN));
    }
    let short = crate::git::short_commit(base_commit);
    Some(format!(
        "the checkout {repository} has uncommitted changes ({files}): the isolated tasks start from commit {short} \
         and will not see them. Commit them first if they should"
    ))
}

/// Whether a file's text still holds a conflict marker git wrote (a line that begins with
/// `<<<<<<< ` or `>>>>>>> `; `=======` alone is too common in text to count).
pub fn has_conflict_markers(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("<<<<<<< ") || line.starts_with(">>>>>>> "))
}

/// The sentence for a task that reported success with conflict markers left in `files`.
pub fn markers_left(files: &[String]) -> String {
    format!(
        "conflict markers are left in {}: the task did not resolve the merge of its dependencies' results. \
         Retry it (it resumes in its worktree, told again to resolve them), or resolve them there by hand",
        files.join(", ")
    )
}

/// The message of a task's result commit.
pub fn result_commit_message(identifier: &str, task_id: TaskId, orchestration: &str) -> String {
    format!("claude-worker: {identifier} (task #{task_id} of orchestration {orchestration})")
}

/// The message of the merge of a task's dependencies' results.
pub fn merge_message(identifier: &str, dependencies: &[String]) -> String {
    format!("claude-worker: merge {} for {identifier}", dependencies.join(", "))
}

/// The identifier of the task added to resolve the conflicts of an orchestration's results.
pub const RESOLVE_IDENTIFIER: &str = "resolve_integration";

/// The prompt of the task that resolves the conflicts of an orchestration's results (it
/// depends on the tasks whose results conflict; its worktree holds their conflicted merge, and
/// the files are listed before this prompt as for any conflicted start).
pub fn resolve_prompt(sinks: &[String]) -> String {
    format!(
        "The results of the tasks {} were each made on a branch of their own and conflict when merged. \
         Resolve every conflict so that the merged work keeps the intent of each task, make sure the \
         project still builds and its tests pass as they did, and change nothing else.",
        sinks.join(", ")
    )
}

/// The sentence that says what a task's start merge left, for the task that fails on it
/// (`on_conflict: "fail"`).
pub fn conflict_failure(dependencies: &[String], files: &[String]) -> String {
    format!(
        "the results of {} conflict in {}: a retry meets the same conflict. Queue the work again with \
         on_conflict \"resolve\" (the default), and the task starts on the conflicted merge, told to resolve it",
        dependencies.join(", "),
        files.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isolation in [Isolation::None, Isolation::Worktree] {
            assert_eq!(Isolation::parse(isolation.as_str()), Some(isolation));
        }
        for on_conflict in [OnConflict::Resolve, OnConflict::Fail] {
            assert_eq!(OnConflict::parse(on_conflict.as_str()), Some(on_conflict));
        }
        for state in [IntegrationState::Pending, IntegrationState::Done, IntegrationState::Abandoned] {
            assert_eq!(IntegrationState::parse(state.as_str()), Some(state));
        }
        assert_eq!(Isolation::parse("Worktree"), None);
    }

    #[test]
    fn a_worktree_path_is_made_of_ids_and_a_safe_identifier() {
        let root = Path::new("/data/worktrees");
        assert_eq!(worktree_path(root, 7, 42, "build_api"), PathBuf::from("/data/worktrees/7/42-build_api"));
        assert_eq!(worktree_path(root, 7, 43, "../x y"), PathBuf::from("/data/worktrees/7/43-_x_y"));
        assert_eq!(worktree_path(root, 7, 44, ".hidden"), PathBuf::from("/data/worktrees/7/44-hidden"));
    }

    #[test]
    fn the_working_directory_maps_into_the_worktree() {
        let (repo, tree) = (Path::new("/home/u/repo"), Path::new("/w/7/42-a"));
        assert_eq!(directory_in_worktree(repo, Path::new("/home/u/repo"), tree), Some(tree.to_path_buf()));
        assert_eq!(
            directory_in_worktree(repo, Path::new("/home/u/repo/backend/src"), tree),
            Some(PathBuf::from("/w/7/42-a/backend/src"))
        );
        assert_eq!(directory_in_worktree(repo, Path::new("/home/u/repo2"), tree), None);
        assert_eq!(directory_in_worktree(repo, Path::new("/elsewhere"), tree), None);
    }

    #[test]
    fn a_task_starts_from_its_dependencies_results_or_the_base() {
        assert_eq!(start_points("base", &[]), vec!["base"]);
        assert_eq!(start_points("base", &[None]), vec!["base"]);
        assert_eq!(start_points("base", &[Some("a".into())]), vec!["a"]);
        assert_eq!(start_points("base", &[Some("a".into()), None, Some("b".into()), Some("a".into())]), vec!["a", "b"]);
    }

    #[test]
    fn conflict_markers_are_recognised_and_underlines_are_not() {
        assert!(has_conflict_markers("a\n<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n"));
        assert!(has_conflict_markers(">>>>>>> abc123\n"));
        assert!(!has_conflict_markers("Title\n=======\ntext <<<<<<< inline\n"));
        assert!(!has_conflict_markers(""));
    }

    #[test]
    fn labels_carry_the_id_and_the_name() {
        assert_eq!(orchestration_label(7, Some("refactor")), "7-refactor");
        assert_eq!(orchestration_label(7, None), "7");
        assert_eq!(recorded_label(7, Some("renamed"), Some("7-refactor".to_owned())), "7-refactor");
        assert_eq!(recorded_label(7, Some("refactor"), None), "7-refactor");
    }

    #[test]
    fn a_label_another_database_uses_gets_a_suffix() {
        let in_use = |labels: &[&str]| labels.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        assert_eq!(choose_label(1, Some("refactor"), &in_use(&[])), "1-refactor");
        assert_eq!(choose_label(1, Some("refactor"), &in_use(&["2-refactor", "1"])), "1-refactor");
        assert_eq!(choose_label(1, Some("refactor"), &in_use(&["1-refactor"])), "1-refactor-2");
        assert_eq!(choose_label(1, None, &in_use(&["1", "1-2"])), "1-3");
        // Compared as branch names: a name that had to be made safe is compared made safe.
        let safe = crate::git::safe_component("1-fix auth");
        assert_eq!(choose_label(1, Some("fix auth"), &in_use(&[&safe])), "1-fix auth-2");
    }
}
