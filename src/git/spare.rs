//! Spare worktrees: a completed task's worktree, cleaned and detached, kept for the next task
//! that starts on the same repository, so that a task with no dependency (which cannot be made
//! ahead: it starts at once) does not wait for a checkout of the whole repository. Taken, a spare
//! is moved to the task's path and becomes a staged worktree (see `stage`), which
//! [`Git::take_staged`] puts on the task's branch at its start commit, writing only the files that
//! differ.
//!
//! A spare is a detached, unlocked worktree of the repository under the spares directory, clean:
//! reset to its commit, without untracked or ignored files (`git clean -ffdx`), so that a task in
//! it sees what a fresh checkout has. Worktrees with submodules are not kept (git cannot move them).
//! Every operation here holds the repository's lock (the caller's). Crash rules: a crash while a
//! worktree is recycled leaves it where it was (removed or recycled again by whoever looks next) or
//! in the spares directory, detached; one while a spare is taken leaves it at the task's path,
//! detached: a staged worktree.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::worktree::real_path;
use super::{Git, GitError, Worktree, WorktreeEntry};

/// Whether `entry` is a spare that can be taken: under `spares`, and loose as a staged worktree is.
fn is_spare(entry: &WorktreeEntry, spares: &Path) -> bool {
    real_path(&entry.path).starts_with(spares) && super::stage::is_loose(entry)
}

/// Makes `dir` and its parents.
fn make_dir(dir: &Path) -> Result<(), GitError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| GitError::Failed { command: format!("mkdir {}", dir.display()), message: e.to_string() })
}

impl Git {
    /// Keeps the worktree at `path` as a spare in `spares` if fewer than `keep` spares of the
    /// repository are there (true), or removes it (false). Its branch stays.
    pub async fn recycle_worktree(
        &self,
        repo: &Path,
        path: &Path,
        spares: &Path,
        keep: usize,
    ) -> Result<bool, GitError> {
        let path = real_path(path);
        let spares = real_path(spares);
        let entries = self.worktrees(repo).await?;
        let entry = entries.iter().find(|entry| real_path(&entry.path) == path);
        let count = entries.iter().filter(|entry| is_spare(entry, &spares)).count();
        let recyclable = entry.is_some_and(|entry| entry.locked.is_none() && !entry.prunable)
            && count < keep
            && !path.join(".gitmodules").exists()
            && path.join(".git").is_file();
        if !recyclable {
            self.remove_worktree(repo, &path).await?;
            return Ok(false);
        }
        self.finish_interrupted(&path).await?;
        self.command(&path, ["checkout", "--quiet", "--detach"]).await?.ok()?;
        self.command(&path, ["reset", "--quiet", "--hard"]).await?.ok()?;
        self.command(&path, ["clean", "-ffdxq"]).await?.ok()?;
        make_dir(&spares)?;
        // Named after where it came from: unique, and readable in `git worktree list`.
        let name = path.iter().rev().take(2).map(|part| part.to_string_lossy()).collect::<Vec<_>>();
        let target = spares.join(name.iter().rev().cloned().collect::<Vec<_>>().join("-"));
        let args = [OsStr::new("worktree"), "move".as_ref(), path.as_os_str(), target.as_os_str()];
        self.command(repo, args).await?.ok()?;
        Ok(true)
    }

    /// Moves a spare of the repository from `spares` to `path` (which must not exist), where it
    /// is a staged worktree; false when there is none.
    pub async fn take_spare(&self, repo: &Path, spares: &Path, path: &Path) -> Result<bool, GitError> {
        let spares = real_path(spares);
        let entries = self.worktrees(repo).await?;
        let Some(spare) = entries.iter().find(|entry| is_spare(entry, &spares)) else { return Ok(false) };
        let path = real_path(path);
        if let Some(parent) = path.parent() {
            make_dir(parent)?;
        }
        let from = real_path(&spare.path);
        let args = [OsStr::new("worktree"), "move".as_ref(), from.as_os_str(), path.as_os_str()];
        self.command(repo, args).await?.ok()?;
        Ok(true)
    }

    /// A spare made ready at `path` for a task that starts there: moved, then `branch` made at
    /// `start` (a whole object name) and checked out, writing only the files that differ; `None`
    /// when no spare is kept. The caller has made sure that no branch of that name exists (a
    /// task that never had a worktree) and that nothing is at `path`.
    pub async fn take_spare_for(
        &self,
        repo: &Path,
        spares: &Path,
        path: &Path,
        branch: &str,
        start: &str,
    ) -> Result<Option<Worktree>, GitError> {
        let start = if super::is_full_sha(start) { start.to_owned() } else { self.resolve_commit(repo, start).await? };
        if !self.take_spare(repo, spares, path).await? {
            return Ok(None);
        }
        self.switch_staged(repo, &real_path(path), branch, &start).await.map(Some)
    }

    /// Removes every spare of the repository (`prune`); how many.
    pub async fn remove_spares(&self, repo: &Path, spares: &Path) -> Result<u64, GitError> {
        let spares = real_path(spares);
        let mut removed = 0;
        let doomed: Vec<PathBuf> = self
            .worktrees(repo)
            .await?
            .iter()
            .filter(|entry| real_path(&entry.path).starts_with(&spares))
            .map(|entry| real_path(&entry.path))
            .collect();
        for path in doomed {
            self.remove_worktree(repo, &path).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[tokio::test]
    async fn a_finished_worktree_is_kept_clean_and_taken_by_the_next_task() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();
        let root = repo.sibling("worktrees");
        let spares = root.join("spare");
        let first = root.join("1").join("1-a");
        git.ensure_worktree(repo.path(), &first, "claude-worker/1/tasks/a", &base).await.expect("made");
        let result = commit_file_in(&first, "a.txt", "a\n", "a's result");
        std::fs::write(first.join("untracked.txt"), "left behind\n").expect("write");
        std::fs::create_dir_all(first.join("target")).expect("mkdir");
        std::fs::write(first.join("target/build.o"), "ignored output\n").expect("write");
        std::fs::write(first.join(".gitignore"), "target/\n").expect("write");

        assert!(git.recycle_worktree(repo.path(), &first, &spares, 1).await.expect("recycled"));
        assert!(!first.exists());
        // Its branch is free: `prune` can delete it.
        assert_eq!(repo.git(&["branch", "--list", "claude-worker/1/tasks/a", "--format=%(worktreepath)"]), "");
        assert_eq!(repo.git(&["rev-parse", "claude-worker/1/tasks/a"]), result);

        // The next task, on another branch at the base: nothing of the first is left.
        let next = root.join("2").join("5-b");
        let taken = git
            .take_spare_for(repo.path(), &spares, &next, "claude-worker/2/tasks/b", &base)
            .await
            .expect("made ready")
            .expect("a spare");
        assert_eq!(taken.head, base);
        assert!(!next.join("a.txt").exists() && !next.join("untracked.txt").exists() && !next.join("target").exists());
        assert_eq!(std::fs::read_to_string(next.join("README")).expect("read"), "readme\n");
        assert!(git.dirty_files(&next).await.expect("status").is_empty());
        assert!(!git.take_spare(repo.path(), &spares, &root.join("2").join("6-c")).await.expect("asked"), "none left");
        // A spare taken by the stager is a staged worktree: taken again at the task's start.
        git.recycle_worktree(repo.path(), &next, &spares, 1).await.expect("kept");
        let staged = root.join("3").join("7-d");
        assert!(git.take_spare(repo.path(), &spares, &staged).await.expect("taken"));
        let taken = git.take_staged(repo.path(), &staged, "claude-worker/3/tasks/d", &base).await.expect("ok");
        assert_eq!(taken.expect("staged").head, base);
    }

    #[tokio::test]
    async fn no_more_than_asked_are_kept_and_prune_removes_them() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();
        let root = repo.sibling("worktrees");
        let spares = root.join("spare");
        let mut kept = Vec::new();
        for name in ["a", "b", "c"] {
            let path = root.join("1").join(name);
            git.ensure_worktree(repo.path(), &path, &format!("claude-worker/1/tasks/{name}"), &base)
                .await
                .expect("made");
            kept.push(git.recycle_worktree(repo.path(), &path, &spares, 2).await.expect("done"));
            assert!(!path.exists());
        }
        assert_eq!(kept, [true, true, false], "two kept, the third removed");
        assert_eq!(git.remove_spares(repo.path(), &spares).await.expect("removed"), 2);
        assert_eq!(git.worktrees(repo.path()).await.expect("listed").len(), 1, "the checkout alone");
        let zero = root.join("1").join("d");
        git.ensure_worktree(repo.path(), &zero, "claude-worker/1/tasks/d", &base).await.expect("made");
        assert!(!git.recycle_worktree(repo.path(), &zero, &spares, 0).await.expect("removed"), "none kept");
    }
}
