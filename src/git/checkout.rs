//! Bringing a branch into the user's own checkout ([`Git::merge_into_checkout`]): the only
//! operation that touches it, and only when asked. Everything that can refuse is decided before
//! anything is touched: a detached HEAD, uncommitted changes, a predicted conflict
//! (`git merge-tree`). Then git merges: a fast-forward when the branch contains the checkout's
//! HEAD, else a merge commit.
//!
//! Untracked files: the checkout is refused for any change to tracked files (staged or not), but
//! an untracked file only when the merge would write its path (or under its directory) — a
//! stray note or build output elsewhere does not stop a merge that cannot touch it, while one the
//! merge would overwrite does (git itself would refuse it half-way otherwise).

use std::path::Path;

use super::{Git, GitError, nul_fields};

/// What [`Git::merge_into_checkout`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// The branch held nothing new.
    AlreadyUpToDate,
    /// The checkout's branch moved forward to the branch.
    FastForward,
    /// A merge commit was made.
    MergeCommit,
}

/// A merge into the user's checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutMerge {
    pub outcome: CheckoutOutcome,
    /// The checkout's branch (short name) that received the merge.
    pub into: String,
    /// Its HEAD before and after.
    pub old_head: String,
    pub new_head: String,
}

impl std::fmt::Display for CheckoutMerge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = super::short_commit;
        match self.outcome {
            CheckoutOutcome::AlreadyUpToDate => write!(f, "{} already holds it ({})", self.into, short(&self.new_head)),
            CheckoutOutcome::FastForward => {
                write!(f, "fast-forward of {} from {} to {}", self.into, short(&self.old_head), short(&self.new_head))
            }
            CheckoutOutcome::MergeCommit => write!(f, "merge commit {} on {}", short(&self.new_head), self.into),
        }
    }
}

/// Whether an untracked entry of `git status` (a file, or a directory ending in `/`) is at or
/// under one of the paths a merge writes.
pub fn untracked_in_the_way<'a>(untracked: &'a [String], written: &[String]) -> Vec<&'a String> {
    untracked
        .iter()
        .filter(|entry| {
            written.iter().any(|path| match entry.strip_suffix('/') {
                Some(dir) => path.starts_with(entry.as_str()) || path == dir,
                None => {
                    path == *entry || path.starts_with(&format!("{entry}/")) || entry.starts_with(&format!("{path}/"))
                }
            })
        })
        .collect()
}

impl Git {
    /// Merges `branch` into the current branch of the checkout at `repo_top` (see the module's
    /// documentation for what refuses it, untouched).
    pub async fn merge_into_checkout(&self, repo_top: &Path, branch: &str) -> Result<CheckoutMerge, GitError> {
        let symbolic = self.command(repo_top, ["symbolic-ref", "--quiet", "--short", "HEAD"]).await?;
        if symbolic.code == 1 {
            return Err(GitError::DetachedHead { dir: repo_top.to_owned() });
        }
        let into = symbolic.ok()?.stdout_text().trim().to_owned();
        let old_head = self.resolve_commit(repo_top, "HEAD").await?;
        let theirs = self.resolve_commit(repo_top, branch).await?;
        let unchanged = |outcome| CheckoutMerge {
            outcome,
            into: into.clone(),
            old_head: old_head.clone(),
            new_head: old_head.clone(),
        };
        if self.is_ancestor(repo_top, &theirs, &old_head).await? {
            return Ok(unchanged(CheckoutOutcome::AlreadyUpToDate));
        }

        let status = self.status(repo_top).await?;
        let tracked: Vec<String> = status.iter().filter(|e| !e.is_untracked()).map(|e| e.path.clone()).collect();
        if !tracked.is_empty() {
            return Err(GitError::Dirty { files: tracked });
        }
        let merged = self.merge_tree(repo_top, &old_head, &theirs).await?;
        if !merged.conflicts.is_empty() {
            return Err(GitError::Conflict { files: merged.conflicts });
        }
        let untracked: Vec<String> = status.into_iter().filter(|e| e.is_untracked()).map(|e| e.path).collect();
        if !untracked.is_empty() {
            let diff = self
                .command(
                    repo_top,
                    ["diff", "--name-only", "-z", "--no-renames", old_head.as_str(), merged.tree.as_str()],
                )
                .await?
                .ok()?;
            let written = nul_fields(&diff.stdout);
            let in_the_way: Vec<String> = untracked_in_the_way(&untracked, &written).into_iter().cloned().collect();
            if !in_the_way.is_empty() {
                return Err(GitError::Dirty { files: in_the_way });
            }
        }

        let fast_forward = self.is_ancestor(repo_top, &old_head, &theirs).await?;
        let mut args = self.identity_config(repo_top).await?;
        let message = format!("Merge branch '{branch}' into {into}");
        if fast_forward {
            args.extend(["merge", "--ff-only", "--quiet", "--no-autostash", theirs.as_str()].map(str::to_owned));
        } else {
            args.extend(
                ["merge", "--no-ff", "--no-edit", "--quiet", "--no-autostash", "-m", message.as_str(), theirs.as_str()]
                    .map(str::to_owned),
            );
        }
        self.command(repo_top, &args).await?.ok()?;
        let new_head = self.resolve_commit(repo_top, "HEAD").await?;
        let outcome = if fast_forward { CheckoutOutcome::FastForward } else { CheckoutOutcome::MergeCommit };
        Ok(CheckoutMerge { outcome, into, old_head, new_head })
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    async fn is_ancestor(&self, repo: &Path, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let output = self.command(repo, ["merge-base", "--is-ancestor", ancestor, descendant]).await?;
        match output.code {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(output.failed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn only_untracked_files_the_merge_writes_are_in_the_way() {
        let untracked = ["notes.txt".to_owned(), "build/".to_owned(), "src/new.rs".to_owned(), "a".to_owned()];
        let written = ["src/new.rs".to_owned(), "build/out.o".to_owned(), "a/b".to_owned(), "other".to_owned()];
        assert_eq!(untracked_in_the_way(&untracked, &written), [&untracked[1], &untracked[2], &untracked[3]]);
        assert!(untracked_in_the_way(&untracked, &["elsewhere".to_owned()]).is_empty());
    }

    #[tokio::test]
    async fn a_branch_ahead_is_fast_forwarded_and_then_up_to_date() {
        let repo = Repo::new();
        let old = repo.git(&["rev-parse", "HEAD"]);
        repo.switch("claude-worker/o/integration", Some(&old));
        let new = repo.commit_file("a.txt", "a\n", "a");
        repo.switch("main", None);
        std::fs::write(repo.path().join("notes.txt"), "mine\n").expect("an untracked file out of the way");
        let git = test_git();
        let merge = git.merge_into_checkout(repo.path(), "claude-worker/o/integration").await.expect("merged");
        assert_eq!(
            merge,
            CheckoutMerge {
                outcome: CheckoutOutcome::FastForward,
                into: "main".to_owned(),
                old_head: old,
                new_head: new.clone()
            }
        );
        assert_eq!(std::fs::read_to_string(repo.path().join("a.txt")).expect("read"), "a\n");
        let again = git.merge_into_checkout(repo.path(), "claude-worker/o/integration").await.expect("merged");
        assert_eq!(again.outcome, CheckoutOutcome::AlreadyUpToDate);
        assert_eq!(again.new_head, new);
    }

    #[tokio::test]
    async fn diverged_branches_get_a_merge_commit() {
        let repo = Repo::new();
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.switch("feature", Some(&base));
        let feature = repo.commit_file("f.txt", "f\n", "f");
        repo.switch("main", None);
        let mine = repo.commit_file("m.txt", "m\n", "m");
        let merge = test_git().merge_into_checkout(repo.path(), "feature").await.expect("merged");
        assert_eq!(merge.outcome, CheckoutOutcome::MergeCommit);
        assert_eq!(merge.old_head, mine);
        assert_eq!(repo.git(&["show", "-s", "--format=%P", "HEAD"]), format!("{mine} {feature}"));
        assert!(repo.path().join("f.txt").exists() && repo.path().join("m.txt").exists());
        assert_eq!(repo.git(&["status", "--porcelain"]), "");
    }

    #[tokio::test]
    async fn a_dirty_checkout_or_a_conflict_is_refused_untouched() {
        let repo = Repo::new();
        repo.commit_file("s.txt", "base\n", "s");
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.switch("theirs", Some(&base));
        repo.commit_file("s.txt", "theirs\n", "theirs");
        repo.commit_file("new.txt", "theirs\n", "theirs new");
        repo.switch("main", None);
        let git = test_git();

        // Uncommitted change to a tracked file.
        std::fs::write(repo.path().join("README"), "edited\n").expect("write");
        let error = git.merge_into_checkout(repo.path(), "theirs").await.expect_err("dirty");
        assert_eq!(error, GitError::Dirty { files: vec!["README".to_owned()] });
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), base);
        assert_eq!(std::fs::read_to_string(repo.path().join("README")).expect("read"), "edited\n");
        repo.git(&["checkout", "--", "README"]);

        // An untracked file where the merge would write.
        std::fs::write(repo.path().join("new.txt"), "mine\n").expect("write");
        let error = git.merge_into_checkout(repo.path(), "theirs").await.expect_err("in the way");
        assert_eq!(error, GitError::Dirty { files: vec!["new.txt".to_owned()] });
        assert_eq!(std::fs::read_to_string(repo.path().join("new.txt")).expect("read"), "mine\n");
        std::fs::remove_file(repo.path().join("new.txt")).expect("rm");

        // A conflict, predicted.
        let mine = repo.commit_file("s.txt", "mine\n", "mine");
        let error = git.merge_into_checkout(repo.path(), "theirs").await.expect_err("conflict");
        assert_eq!(error, GitError::Conflict { files: vec!["s.txt".to_owned()] });
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), mine);
        assert_eq!(repo.git(&["status", "--porcelain"]), "");
        assert!(!repo.path().join(".git/MERGE_HEAD").exists());
    }

    #[tokio::test]
    async fn a_detached_head_is_refused() {
        let repo = Repo::new();
        repo.git(&["branch", "feature"]);
        repo.git(&["checkout", "--quiet", "--detach"]);
        let error = test_git().merge_into_checkout(repo.path(), "feature").await.expect_err("detached");
        assert!(matches!(error, GitError::DetachedHead { .. }), "{error:?}");
        assert!(error.to_string().contains("git switch"), "{error}");
    }
}
