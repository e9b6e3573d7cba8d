//! Moving a branch to a commit ([`Git::set_branch`]: the integration branch), the orchestration
//! names a repository's branches are under already ([`Git::labels_in_use`]), and deleting an
//! orchestration's branches ([`Git::delete_branches`]: `prune`).

use std::path::{Path, PathBuf};

use super::{Git, GitError, nul_fields};

/// What [`Git::delete_branches`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BranchCleanup {
    /// The branches deleted (short names: `claude-worker/...`).
    pub deleted: Vec<String>,
    /// The branches kept because a worktree has them checked out, with that worktree's path
    /// (remove the worktree first).
    pub checked_out: Vec<(String, PathBuf)>,
}

impl Git {
    /// Points `branch` at `commit`, creating it if needed, in one atomic step (`git update-ref`),
    /// whatever it pointed at before. A worktree that has `branch` checked out is not updated:
    /// callers move only branches no worktree has.
    pub async fn set_branch(&self, repo: &Path, branch: &str, commit: &str) -> Result<(), GitError> {
        let sha = self.resolve_commit(repo, commit).await?;
        let reference = format!("refs/heads/{branch}");
        self.command(repo, ["update-ref", "-m", "claude-worker: set branch", reference.as_str(), sha.as_str()])
            .await?
            .ok()?;
        Ok(())
    }

    /// The names directly under `claude-worker/` that the repository's branches use (each
    /// orchestration's branches are under one), so that a new orchestration picks another.
    pub async fn labels_in_use(&self, repo: &Path) -> Result<Vec<String>, GitError> {
        let pattern = format!("refs/heads/{}/", super::BRANCH_ROOT);
        let output =
            self.command(repo, ["for-each-ref", "--format=%(refname:lstrip=3)", pattern.as_str()]).await?.ok()?;
        let mut labels: Vec<String> = output
            .stdout_text()
            .lines()
            .filter_map(|name| name.split('/').next())
            .filter(|label| !label.is_empty())
            .map(str::to_owned)
            .collect();
        labels.dedup();
        Ok(labels)
    }

    /// Deletes every branch under `refs/heads/<prefix>` (`prefix` itself and `prefix/...`, not
    /// `prefix-other`), except those checked out in a worktree, which are listed instead.
    pub async fn delete_branches(&self, repo: &Path, prefix: &str) -> Result<BranchCleanup, GitError> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Err(GitError::Failed {
                command: "delete branches".to_owned(),
                message: "an empty prefix would name every branch".to_owned(),
            });
        }
        let pattern = format!("refs/heads/{prefix}");
        let output = self
            .command(repo, ["for-each-ref", "--format=%(refname:strip=2)%00%(worktreepath)%00", pattern.as_str()])
            .await?
            .ok()?;
        let fields = nul_fields(&output.stdout);
        let mut cleanup = BranchCleanup::default();
        let mut doomed = Vec::new();
        for pair in fields.chunks(2) {
            let [name, worktree] = pair else { continue };
            let name = name.trim_start_matches('\n').to_owned();
            if worktree.is_empty() {
                doomed.push(name);
            } else {
                cleanup.checked_out.push((name, PathBuf::from(worktree)));
            }
        }
        if !doomed.is_empty() {
            let args =
                ["branch", "--delete", "--force", "--quiet", "--"].into_iter().chain(doomed.iter().map(String::as_str));
            self.command(repo, args).await?.ok()?;
        }
        cleanup.deleted = doomed;
        Ok(cleanup)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn set_branch_creates_and_moves() {
        let repo = Repo::new();
        let first = repo.git(&["rev-parse", "HEAD"]);
        let second = repo.commit_file("a.txt", "a\n", "a");
        let git = test_git();
        git.set_branch(repo.path(), "claude-worker/o/integration", &first).await.expect("create");
        assert_eq!(repo.git(&["rev-parse", "claude-worker/o/integration"]), first);
        git.set_branch(repo.path(), "claude-worker/o/integration", &second).await.expect("move");
        assert_eq!(repo.git(&["rev-parse", "claude-worker/o/integration"]), second);
        assert_eq!(
            git.set_branch(repo.path(), "x", "nope").await,
            Err(GitError::UnknownRevision { rev: "nope".to_owned() })
        );
    }

    #[tokio::test]
    async fn the_labels_in_use_are_the_names_under_the_root() {
        let repo = Repo::new();
        let git = test_git();
        assert!(git.labels_in_use(repo.path()).await.expect("none").is_empty());
        for branch in ["claude-worker/1-a/integration", "claude-worker/1-a/tasks/x", "claude-worker/2/tasks/y", "mine"]
        {
            repo.git(&["branch", branch]);
        }
        assert_eq!(git.labels_in_use(repo.path()).await.expect("listed"), ["1-a", "2"]);
    }

    #[tokio::test]
    async fn delete_branches_takes_the_prefix_and_keeps_checked_out_ones() {
        let repo = Repo::new();
        let head = repo.git(&["rev-parse", "HEAD"]);
        for branch in [
            "claude-worker/o/integration",
            "claude-worker/o/tasks/a",
            "claude-worker/o/tasks/b",
            "claude-worker/o2/integration",
            "claude-worker/other",
        ] {
            repo.git(&["branch", branch, &head]);
        }
        let worktree = repo.sibling("wt-b");
        repo.git(&["worktree", "add", "--quiet", worktree.to_str().expect("utf-8"), "claude-worker/o/tasks/b"]);
        let cleanup = test_git().delete_branches(repo.path(), "claude-worker/o").await.expect("delete");
        assert_eq!(cleanup.deleted, ["claude-worker/o/integration", "claude-worker/o/tasks/a"]);
        assert_eq!(cleanup.checked_out, [("claude-worker/o/tasks/b".to_owned(), worktree)]);
        let left = repo.git(&["for-each-ref", "--format=%(refname:strip=2)", "refs/heads/"]);
        assert_eq!(
            left.lines().collect::<Vec<_>>(),
            ["claude-worker/o/tasks/b", "claude-worker/o2/integration", "claude-worker/other", "main"]
        );
        // Nothing left to delete is not an error.
        let again = test_git().delete_branches(repo.path(), "claude-worker/none").await.expect("delete");
        assert_eq!(again, BranchCleanup::default());
    }
}
