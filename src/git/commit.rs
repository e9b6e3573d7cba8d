//! A task's result commit ([`Git::commit_all`]): whatever the CLI left uncommitted in its
//! worktree, committed on its branch, Claude's own commits kept. And the identity of the commits
//! claude-worker makes where the user configured none ([`fallback_identity`], pure).

use std::path::Path;

use super::{Git, GitError};

/// The name of claude-worker's commits where git knows no user name.
pub const FALLBACK_NAME: &str = "claude-worker";
/// The email of claude-worker's commits where git knows no user email.
pub const FALLBACK_EMAIL: &str = "claude-worker@localhost";

/// The `-c` arguments that give git an identity where none is configured: `user.name` unless it
/// is configured (the `GIT_AUTHOR_NAME`/`GIT_COMMITTER_NAME` variables win over it anyway);
/// `user.email` unless it is configured or `EMAIL` is set (which git uses after `user.email`).
/// Git's own guess from the system (`user@hostname`) is not used: it fails on many machines,
/// and a commit that fails for want of an identity would fail the task.
pub fn fallback_identity(configured: &[&str], email_variable_set: bool) -> Vec<String> {
    let mut args = Vec::new();
    if !configured.contains(&"user.name") {
        args.extend(["-c".to_owned(), format!("user.name={FALLBACK_NAME}")]);
    }
    if !configured.contains(&"user.email") && !email_variable_set {
        args.extend(["-c".to_owned(), format!("user.email={FALLBACK_EMAIL}")]);
    }
    args
}

impl Git {
    /// Commits everything in `worktree` (`git add -A`: changes, new files, deletions, submodule
    /// pointers) when anything is left uncommitted, with `message`; returns HEAD's sha, which is
    /// the previous HEAD when nothing was left (Claude committed its work itself, or did
    /// nothing). The commit skips the repository's hooks (`--no-verify`: a formatter or linter
    /// hook must not fail or rewrite a task's result; `verify` is the check) and is not signed
    /// (no prompt can hang it).
    pub async fn commit_all(&self, worktree: &Path, message: &str) -> Result<String, GitError> {
        self.command(worktree, ["add", "--all"]).await?.ok()?;
        let staged = self.command(worktree, ["diff", "--cached", "--quiet", "--ignore-submodules=none"]).await?;
        match staged.code {
            0 => {}
            1 => {
                let mut args = self.identity_config(worktree).await?;
                args.extend(
                    ["-c", "commit.gpgSign=false", "commit", "--no-verify", "--quiet", "-m", message]
                        .map(str::to_owned),
                );
                self.command(worktree, &args).await?.ok()?;
            }
            _ => return Err(staged.failed()),
        }
        self.resolve_commit(worktree, "HEAD").await
    }

    /// The `-c` arguments of [`fallback_identity`] for commits in `repo`.
    pub(super) async fn identity_config(&self, repo: &Path) -> Result<Vec<String>, GitError> {
        let output = self.command(repo, ["config", "--get-regexp", r"^user\.(name|email)$"]).await?;
        if output.code > 1 {
            return Err(output.failed());
        }
        let text = output.stdout_text();
        let configured: Vec<&str> = text.lines().filter_map(|line| line.split_whitespace().next()).collect();
        let email_set = self.env_var("EMAIL").is_some_and(|v| !v.is_empty());
        Ok(fallback_identity(&configured, email_set))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn the_fallback_fills_only_what_is_missing() {
        assert_eq!(
            fallback_identity(&[], false),
            ["-c", "user.name=claude-worker", "-c", "user.email=claude-worker@localhost"]
        );
        assert_eq!(fallback_identity(&["user.name"], false), ["-c", "user.email=claude-worker@localhost"]);
        assert_eq!(fallback_identity(&["user.email"], false), ["-c", "user.name=claude-worker"]);
        assert_eq!(fallback_identity(&[], true), ["-c", "user.name=claude-worker"]);
        assert!(fallback_identity(&["user.name", "user.email"], false).is_empty());
    }

    #[tokio::test]
    async fn everything_left_is_committed_without_a_configured_identity() {
        let repo = Repo::new();
        let before = repo.git(&["rev-parse", "HEAD"]);
        std::fs::write(repo.path().join("README"), "changed\n").expect("write");
        std::fs::write(repo.path().join("new.txt"), "new\n").expect("write");
        let git = test_git();
        let head = git.commit_all(repo.path(), "task api: result").await.expect("commit");
        assert_ne!(head, before);
        assert_eq!(repo.git(&["rev-parse", "HEAD^"]), before);
        assert_eq!(
            repo.git(&["show", "-s", "--format=%an <%ae>|%s", &head]),
            "claude-worker <claude-worker@localhost>|task api: result"
        );
        assert_eq!(show(repo.path(), &head, "new.txt"), "new\n");
        assert!(git.dirty_files(repo.path()).await.expect("status").is_empty());
        // Nothing left: HEAD as it is.
        assert_eq!(git.commit_all(repo.path(), "again").await.expect("commit"), head);
    }

    #[tokio::test]
    async fn a_configured_identity_is_used_and_hooks_are_skipped() {
        let repo = Repo::new();
        repo.git(&["config", "user.name", "Ada"]);
        repo.git(&["config", "user.email", "ada@example.com"]);
        let hook = repo.path().join(".git/hooks/pre-commit");
        std::fs::write(&hook, "#!/bin/sh\nexit 1\n").expect("hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        std::fs::write(repo.path().join("x.txt"), "x\n").expect("write");
        let head = test_git().commit_all(repo.path(), "m").await.expect("commit");
        assert_eq!(repo.git(&["show", "-s", "--format=%an <%ae>", &head]), "Ada <ada@example.com>");
    }

    #[tokio::test]
    async fn claudes_own_commits_are_kept() {
        let repo = Repo::new();
        let own = repo.commit_file("claude.txt", "by claude\n", "Claude's own commit");
        let git = test_git();
        assert_eq!(git.commit_all(repo.path(), "m").await.expect("commit"), own);
        std::fs::write(repo.path().join("left.txt"), "left over\n").expect("write");
        let head = git.commit_all(repo.path(), "m").await.expect("commit");
        assert_eq!(repo.git(&["rev-parse", "HEAD^"]), own);
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    }
}
