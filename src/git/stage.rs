//! A worktree made ahead of its task (staged), so that the checkout of a large repository is not
//! paid when the task starts: while a task waits for its dependencies, its worktree is made
//! detached at the orchestration's base ([`Git::stage_worktree`], under the repository's lock:
//! fast, no files written) and filled ([`Git::fill_staged`], without the lock: the slow part, which
//! writes only this worktree's files and index). At the task's start [`Git::take_staged`] puts its
//! branch on the start commit there, which writes only the files that differ between the base and
//! that commit.
//!
//! Crash rules. A staged worktree is detached and unlocked once git made it; one whose fill was
//! interrupted has missing files or a stale `index.lock`, which the forced checkout of
//! [`Git::take_staged`] makes whole again (every file not up to date in the index is written).
//! A crash inside that checkout leaves the worktree detached (taken again from the start) or on
//! the branch at the start commit (resumed by `ensure_worktree` as a made worktree). A branch of
//! the task's name at another commit is never moved: it is not this task's.

use std::ffi::OsStr;
use std::path::Path;

use super::worktree::real_path;
use super::{Git, GitError, Worktree, WorktreeEntry};

/// Whether `entry` is a worktree made ahead and free to take: detached, not locked (git locks a
/// worktree `initializing` while it makes it), and present.
pub(super) fn is_loose(entry: &WorktreeEntry) -> bool {
    entry.detached && entry.locked.is_none() && !entry.prunable && entry.path.join(".git").is_file()
}

impl Git {
    /// Makes the worktree of a task that waits, detached at `commit`, without its files (see
    /// [`Git::fill_staged`]); false when something is at `path` already (the task started, or it
    /// was staged before). Hold the repository's lock around it.
    pub async fn stage_worktree(&self, repo: &Path, path: &Path, commit: &str) -> Result<bool, GitError> {
        let path = real_path(path);
        if path.exists() || self.worktrees(repo).await?.iter().any(|entry| real_path(&entry.path) == path) {
            return Ok(false);
        }
        let path_arg = path.as_os_str().to_owned();
        let args = [OsStr::new("worktree"), "add".as_ref(), "--quiet".as_ref(), "--detach".as_ref()];
        let args = args.into_iter().chain(["--no-checkout".as_ref(), path_arg.as_os_str(), commit.as_ref()]);
        self.command(repo, args).await?.ok()?;
        Ok(true)
    }

    /// Writes the files of a worktree made by [`Git::stage_worktree`] (its own index and files
    /// only: no lock of the repository is needed).
    pub async fn fill_staged(&self, path: &Path) -> Result<(), GitError> {
        self.command(path, ["reset", "--quiet", "--hard", "HEAD"]).await?.ok()?;
        Ok(())
    }

    /// The staged worktree at `path` made ready for its task: `branch` made (or found) at
    /// `start` and checked out there, forced (nobody works in a staged worktree). `None` when no
    /// staged worktree is at `path` (never staged, or the task made its worktree already: then
    /// [`Git::ensure_worktree`] does the rest). Only for a task that never ran: Claude may detach
    /// the HEAD of a worktree it works in. Hold the repository's lock around it.
    pub async fn take_staged(
        &self,
        repo: &Path,
        path: &Path,
        branch: &str,
        start: &str,
    ) -> Result<Option<Worktree>, GitError> {
        let path = real_path(path);
        let entries = self.worktrees(repo).await?;
        if !entries.iter().any(|entry| real_path(&entry.path) == path && is_loose(entry)) {
            return Ok(None);
        }
        if let Some(other) = entries.iter().find(|entry| entry.branch.as_deref() == Some(branch)) {
            return Err(GitError::BranchCheckedOut { branch: branch.to_owned(), worktree: other.path.clone() });
        }
        let start = if super::is_full_sha(start) { start.to_owned() } else { self.resolve_commit(repo, start).await? };
        let reference = format!("refs/heads/{branch}");
        if let Ok(existing) = self.resolve_commit(repo, &reference).await {
            // Made by an interrupted take of this same task, or not ours at all.
            if existing != start {
                return Err(GitError::BranchNotOurs { branch: branch.to_owned() });
            }
        }
        self.switch_staged(repo, &path, branch, &start).await.map(Some)
    }

    /// Puts a staged worktree's new `branch` at `start` (a whole object name) and checks it out
    /// there, forced, and initialises its submodules.
    pub(super) async fn switch_staged(
        &self,
        repo: &Path,
        path: &Path,
        branch: &str,
        start: &str,
    ) -> Result<Worktree, GitError> {
        self.finish_interrupted(path).await?;
        let args = ["checkout", "--quiet", "--force", "--no-track", "-B", branch, start];
        self.command(path, args).await?.ok()?;
        if path.join(".gitmodules").is_file() {
            let info = self.discover(repo).await?;
            self.init_submodules(&info.common_dir, path).await?;
        }
        // Each git command is a few milliseconds of the task's start: what is known is not asked.
        Ok(Worktree { path: path.to_owned(), branch: branch.to_owned(), head: start.to_owned(), resumed: false })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[tokio::test]
    async fn a_staged_worktree_is_taken_at_its_start_commit_with_the_files_of_that_commit() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        let start = repo.commit_file("dep.txt", "from the dependency\n", "dependency's result");
        repo.git(&["reset", "--quiet", "--hard", &base]);
        let git = test_git();
        let path = repo.worktree_path("t");
        assert!(git.stage_worktree(repo.path(), &path, &base).await.expect("staged"));
        assert!(!git.stage_worktree(repo.path(), &path, &base).await.expect("asked again"), "once");
        git.fill_staged(&path).await.expect("filled");
        assert_eq!(std::fs::read_to_string(path.join("README")).expect("the base's files"), "readme\n");
        assert!(!path.join("dep.txt").exists());
        let taken = git
            .take_staged(repo.path(), &path, "claude-worker/o/tasks/t", &start)
            .await
            .expect("taken")
            .expect("it was staged");
        assert!(!taken.resumed);
        assert_eq!(taken.head, start);
        assert_eq!(run_git(&path, &["symbolic-ref", "--short", "HEAD"]), "claude-worker/o/tasks/t");
        assert_eq!(std::fs::read_to_string(path.join("dep.txt")).expect("the start's files"), "from the dependency\n");
        assert!(git.dirty_files(&path).await.expect("status").is_empty());
        // Taken once: from now on it is an ordinary worktree, resumed as it is.
        assert!(git.take_staged(repo.path(), &path, "claude-worker/o/tasks/t", &start).await.expect("ok").is_none());
        let resumed =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/t", &start).await.expect("resumed");
        assert!(resumed.resumed);
        // The user's checkout never moved.
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), base);
    }

    #[tokio::test]
    async fn an_interrupted_fill_or_take_is_made_whole() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();
        // Staged, never filled, a stale index lock of a killed `git reset` left behind.
        let path = repo.worktree_path("half");
        git.stage_worktree(repo.path(), &path, &base).await.expect("staged");
        let admin = admin_dir_of(&path);
        std::fs::write(admin.join("index.lock"), "").expect("a stale lock");
        let taken = git.take_staged(repo.path(), &path, "claude-worker/o/tasks/half", &base).await.expect("taken");
        assert!(taken.is_some());
        assert_eq!(std::fs::read_to_string(path.join("README")).expect("written"), "readme\n");
        assert!(git.dirty_files(&path).await.expect("status").is_empty());

        // A take interrupted after it made the branch, before HEAD moved: the same start, taken again.
        let path = repo.worktree_path("again");
        git.stage_worktree(repo.path(), &path, &base).await.expect("staged");
        git.fill_staged(&path).await.expect("filled");
        repo.git(&["branch", "claude-worker/o/tasks/again", &base]);
        let taken = git.take_staged(repo.path(), &path, "claude-worker/o/tasks/again", &base).await.expect("taken");
        assert_eq!(taken.expect("staged").head, base);
    }

    #[tokio::test]
    async fn a_branch_of_the_same_name_elsewhere_is_never_moved() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        let theirs = repo.commit_file("theirs.txt", "their work\n", "another database's task");
        repo.git(&["branch", "claude-worker/o/tasks/x", &theirs]);
        repo.git(&["reset", "--quiet", "--hard", &base]);
        let git = test_git();
        let path = repo.worktree_path("x");
        git.stage_worktree(repo.path(), &path, &base).await.expect("staged");
        git.fill_staged(&path).await.expect("filled");
        let error = git.take_staged(repo.path(), &path, "claude-worker/o/tasks/x", &base).await.expect_err("refused");
        assert!(error.to_string().contains("not this task's"), "{error}");
        assert_eq!(repo.git(&["rev-parse", "claude-worker/o/tasks/x"]), theirs, "untouched");
    }
}
