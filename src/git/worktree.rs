//! A task's worktree: made on its branch, found again after a crash, repaired when a crash left it
//! half-made ([`Git::ensure_worktree`]), and removed ([`Git::remove_worktree`]). Reading `git
//! worktree list --porcelain -z` is pure ([`parse_worktree_list`]).
//!
//! Crash rules. A worktree already at the path, on the branch, and complete is reused as it is
//! (`resumed`): a task taken back after its server died goes on where it was, after whatever
//! git operation the crash interrupted in it is undone (a merge, cherry-pick, revert or rebase in
//! progress is aborted; an `index.lock` left by a killed git is removed — the caller holds the
//! [`super::RepoLock`] and no task runs in the worktree while it is being prepared, so the lock
//! is stale). A worktree git was still making when it died (still locked `initializing`), on
//! another branch, or whose directory is gone is removed and made again; a directory left at the
//! path that is empty or a dead worktree of this repository is deleted; any other directory there
//! is not ours and is an error.

use std::path::{Component, Path, PathBuf};

use super::{Git, GitError, nul_fields};

/// A task's worktree, ready to work in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worktree {
    /// Its directory (absolute, symbolic links resolved).
    pub path: PathBuf,
    /// The branch it has checked out.
    pub branch: String,
    /// The commit it is at.
    pub head: String,
    /// It existed already (a task taken back after a crash resumes there).
    pub resumed: bool,
}

/// One worktree of `git worktree list --porcelain -z`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorktreeEntry {
    pub path: PathBuf,
    /// Its HEAD commit (none in a bare repository).
    pub head: Option<String>,
    /// The branch checked out (short name), none when detached.
    pub branch: Option<String>,
    pub detached: bool,
    pub bare: bool,
    /// Locked, with the reason (empty when none was given); git locks a worktree `initializing`
    /// while it makes it.
    pub locked: Option<String>,
    /// Its directory is gone (`git worktree prune` would remove it).
    pub prunable: bool,
}

/// Reads `git worktree list --porcelain -z`: attributes each NUL-terminated, a worktree ended by
/// an empty field.
pub fn parse_worktree_list(output: &[u8]) -> Vec<WorktreeEntry> {
    let mut entries = Vec::new();
    let mut current: Option<WorktreeEntry> = None;
    for field in nul_fields(output) {
        if field.is_empty() {
            entries.extend(current.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field.as_str(), ""));
        if key == "worktree" {
            entries.extend(current.take());
            current = Some(WorktreeEntry { path: PathBuf::from(value), ..WorktreeEntry::default() });
            continue;
        }
        let Some(entry) = current.as_mut() else { continue };
        match key {
            "HEAD" => entry.head = Some(value.to_owned()),
            "branch" => entry.branch = Some(value.strip_prefix("refs/heads/").unwrap_or(value).to_owned()),
            "detached" => entry.detached = true,
            "bare" => entry.bare = true,
            "locked" => entry.locked = Some(value.to_owned()),
            "prunable" => entry.prunable = true,
            _ => {}
        }
    }
    entries.extend(current);
    entries
}

/// `path` absolute with symbolic links resolved as far as it exists (git stores worktree paths
/// that way), the rest appended as given, `.` and `..` folded.
pub(super) fn real_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |path, name| path.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normal,
        }
    }
}

impl Git {
    /// The worktrees of `repo` (the main one first).
    pub async fn worktrees(&self, repo: &Path) -> Result<Vec<WorktreeEntry>, GitError> {
        let output = self.command(repo, ["worktree", "list", "--porcelain", "-z"]).await?.ok()?;
        Ok(parse_worktree_list(&output.stdout))
    }

    /// Makes sure `path` is a worktree of `repo` with `branch` checked out, ready to work in:
    /// reused as it is when it already is one (`resumed`), otherwise made, on the existing
    /// `branch` or on a new one at `start`, and its submodules initialised. Repairs what a crash
    /// left (see the module's documentation). Hold the repository's lock around it.
    pub async fn ensure_worktree(
        &self,
        repo: &Path,
        path: &Path,
        branch: &str,
        start: &str,
    ) -> Result<Worktree, GitError> {
        let path = real_path(path);
        let info = self.discover(repo).await?;
        // Never `git worktree prune`: it would forget the user's own worktrees whose directories
        // are away for the moment (an unmounted disk). Only our entries are cleared, one by one.
        let mut entries = self.worktrees(repo).await?;
        let stale: Vec<PathBuf> = entries
            .iter()
            .filter(|e| e.prunable && e.branch.as_deref() == Some(branch))
            .map(|e| real_path(&e.path))
            .collect();
        for stale in &stale {
            self.remove_entry(repo, stale).await?;
        }
        if !stale.is_empty() {
            entries = self.worktrees(repo).await?;
        }
        if let Some(entry) = entries.iter().find(|entry| real_path(&entry.path) == path) {
            let complete = entry.branch.as_deref() == Some(branch)
                && entry.locked.as_deref() != Some("initializing")
                && !entry.prunable
                && path.join(".git").is_file();
            if complete {
                self.finish_interrupted(&path).await?;
                self.init_submodules(&info.common_dir, &path).await?;
                let head = self.resolve_commit(&path, "HEAD").await?;
                return Ok(Worktree { path, branch: branch.to_owned(), head, resumed: true });
            }
            self.remove_entry(repo, &path).await?;
        } else if path.exists() {
            self.remove_leftover(&info.common_dir, &path).await?;
        }
        if let Some(other) =
            entries.iter().find(|entry| entry.branch.as_deref() == Some(branch) && real_path(&entry.path) != path)
        {
            return Err(GitError::BranchCheckedOut { branch: branch.to_owned(), worktree: other.path.clone() });
        }
        let reference = format!("refs/heads/{branch}");
        let exists = self.command(repo, ["rev-parse", "--verify", "--quiet", reference.as_str()]).await?.code == 0;
        let path_arg = path.as_os_str().to_owned();
        let head = if exists {
            self.command(
                repo,
                [std::ffi::OsStr::new("worktree"), "add".as_ref(), "--quiet".as_ref(), &path_arg, branch.as_ref()],
            )
            .await?
            .ok()?;
            None
        } else {
            let start =
                if super::is_full_sha(start) { start.to_owned() } else { self.resolve_commit(repo, start).await? };
            self.command(
                repo,
                [
                    std::ffi::OsStr::new("worktree"),
                    "add".as_ref(),
                    "--quiet".as_ref(),
                    "--no-track".as_ref(),
                    "-b".as_ref(),
                    branch.as_ref(),
                    &path_arg,
                    start.as_ref(),
                ],
            )
            .await?
            .ok()?;
            Some(start)
        };
        self.init_submodules(&info.common_dir, &path).await?;
        let head = match head {
            Some(start) => start,
            None => self.resolve_commit(&path, "HEAD").await?,
        };
        Ok(Worktree { path, branch: branch.to_owned(), head, resumed: false })
    }

    /// Removes the worktree at `path` (whatever it holds: it is forced); one already gone is
    /// not an error. Its branch stays.
    pub async fn remove_worktree(&self, repo: &Path, path: &Path) -> Result<(), GitError> {
        let path = real_path(path);
        let info = self.discover(repo).await?;
        let entries = self.worktrees(repo).await?;
        if entries.iter().any(|entry| real_path(&entry.path) == path) {
            self.remove_entry(repo, &path).await
        } else if path.exists() {
            self.remove_leftover(&info.common_dir, &path).await
        } else {
            Ok(())
        }
    }

    /// Removes a worktree git knows of, locked or not, and whatever is left of its directory.
    async fn remove_entry(&self, repo: &Path, path: &Path) -> Result<(), GitError> {
        let path_arg = path.as_os_str().to_owned();
        // Twice forced: a locked worktree too; a missing directory makes git forget the entry.
        let remove = [
            std::ffi::OsStr::new("worktree"),
            "remove".as_ref(),
            "--force".as_ref(),
            "--force".as_ref(),
            path_arg.as_os_str(),
        ];
        let removed = self.command(repo, remove).await?;
        if removed.code != 0 {
            // A half-made worktree may not pass git's checks: unlock it, delete its directory,
            // and have git forget this entry alone.
            let _ = self.command(repo, [std::ffi::OsStr::new("worktree"), "unlock".as_ref(), &path_arg]).await?;
            remove_dir(path).await.map_err(|e| GitError::Failed {
                command: format!("remove {}", path.display()),
                message: format!("{e} (after {}: {})", removed.command, removed.stderr.trim()),
            })?;
            self.command(repo, remove).await?.ok()?;
        }
        Ok(())
    }

    /// Deletes a directory at a worktree's path that git does not list: empty, or a dead
    /// worktree of this repository (its `.git` file points into `<common_dir>/worktrees/`).
    /// Anything else is not ours to delete.
    async fn remove_leftover(&self, common_dir: &Path, path: &Path) -> Result<(), GitError> {
        if !is_leftover(common_dir, path) {
            return Err(GitError::Failed {
                command: format!("git worktree add {}", path.display()),
                message: format!(
                    "{} exists and is not a worktree of this repository: move it away or choose another path",
                    path.display()
                ),
            });
        }
        remove_dir(path)
            .await
            .map_err(|e| GitError::Failed { command: format!("remove {}", path.display()), message: e.to_string() })
    }

    /// Undoes what a crash interrupted in a worktree: a stale `index.lock`, a merge, cherry-pick,
    /// revert or rebase in progress.
    pub(super) async fn finish_interrupted(&self, worktree: &Path) -> Result<(), GitError> {
        let git_dir = match admin_dir(worktree) {
            Some(dir) => dir,
            None => {
                let output =
                    self.command(worktree, ["rev-parse", "--path-format=absolute", "--git-dir"]).await?.ok()?;
                PathBuf::from(output.stdout_text().trim())
            }
        };
        let index_lock = git_dir.join("index.lock");
        if index_lock.exists() {
            std::fs::remove_file(&index_lock).map_err(|e| GitError::Failed {
                command: format!("remove {}", index_lock.display()),
                message: e.to_string(),
            })?;
        }
        let in_progress = [
            ("MERGE_HEAD", ["merge", "--abort"]),
            ("CHERRY_PICK_HEAD", ["cherry-pick", "--abort"]),
            ("REVERT_HEAD", ["revert", "--abort"]),
            ("rebase-merge", ["rebase", "--abort"]),
            ("rebase-apply", ["rebase", "--abort"]),
        ];
        for (marker, abort) in in_progress {
            if git_dir.join(marker).exists() {
                self.command(worktree, abort).await?.ok()?;
            }
        }
        Ok(())
    }
}

/// The administrative directory of the worktree at `path` (where its `HEAD`, index and locks
/// are), as its `.git` file names it (relative with `worktree.useRelativePaths`, git 2.48).
fn admin_dir(path: &Path) -> Option<PathBuf> {
    let dot_git = std::fs::read_to_string(path.join(".git")).ok()?;
    let target = dot_git.trim().strip_prefix("gitdir:")?.trim();
    let dir = path.join(target);
    dir.is_dir().then_some(dir)
}

/// Whether the directory at `path` is empty or a worktree of the repository at `common_dir`
/// that git no longer lists.
fn is_leftover(common_dir: &Path, path: &Path) -> bool {
    let Ok(mut entries) = std::fs::read_dir(path) else { return false };
    if entries.next().is_none() {
        return true;
    }
    let Ok(dot_git) = std::fs::read_to_string(path.join(".git")) else { return false };
    let Some(target) = dot_git.trim().strip_prefix("gitdir:") else { return false };
    // Relative with `worktree.useRelativePaths` (git 2.48): relative to the worktree.
    let target = path.join(target.trim());
    real_path(&target).starts_with(real_path(&common_dir.join("worktrees")))
}

/// Deletes a directory and everything in it, off the async threads.
async fn remove_dir(path: &Path) -> std::io::Result<()> {
    let path = path.to_owned();
    let result = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await;
    result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn worktree_lists_are_read() {
        let output = b"worktree /repo\0HEAD abc\0branch refs/heads/main\0\0worktree /wt/a b\0HEAD def\0detached\0locked initializing\0\0worktree /wt/gone\0HEAD 123\0branch refs/heads/claude-worker/o/tasks/x\0prunable gitdir file points to non-existent location\0\0";
        let entries = parse_worktree_list(output);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].branch.as_deref(), Some("main"));
        assert_eq!(entries[1].path, PathBuf::from("/wt/a b"));
        assert!(entries[1].detached);
        assert_eq!(entries[1].locked.as_deref(), Some("initializing"));
        assert!(entries[2].prunable);
        assert_eq!(entries[2].branch.as_deref(), Some("claude-worker/o/tasks/x"));
        let bare = parse_worktree_list(b"worktree /r.git\0bare\0\0");
        assert!(bare[0].bare && bare[0].head.is_none());
    }

    #[test]
    fn real_paths_fold_dots_and_keep_what_does_not_exist() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let real = dir.path().canonicalize().expect("canonical");
        assert_eq!(real_path(&dir.path().join("a/../b/./c")), real.join("b/c"));
    }

    #[tokio::test]
    async fn a_fresh_worktree_then_the_same_one_resumed() {
        let repo = Repo::new();
        let start = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();
        let path = repo.worktree_path("task-a");
        let made = git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/a", &start).await.expect("made");
        assert!(!made.resumed);
        assert_eq!(made.head, start);
        assert_eq!(made.path, real_path(&path));
        assert_eq!(run_git(&path, &["symbolic-ref", "--short", "HEAD"]), "claude-worker/o/tasks/a");
        // Work in progress survives a resume.
        let committed = commit_file_in(&path, "a.txt", "a\n", "claude's commit");
        std::fs::write(path.join("wip.txt"), "wip\n").expect("write");
        let again = git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/a", &start).await.expect("resumed");
        assert!(again.resumed);
        assert_eq!(again.head, committed);
        assert!(path.join("wip.txt").exists());
        // The user's checkout did not move.
        assert_eq!(repo.git(&["rev-parse", "HEAD"]), start);
        assert_eq!(repo.git(&["status", "--porcelain"]), "");
        git.remove_worktree(repo.path(), &path).await.expect("removed");
        assert!(!path.exists());
        git.remove_worktree(repo.path(), &path).await.expect("gone already");
        // The branch stays, and a worktree made again takes it as it is.
        let back = git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/a", &start).await.expect("again");
        assert!(!back.resumed);
        assert_eq!(back.head, committed);
    }

    #[tokio::test]
    async fn the_users_own_worktree_whose_directory_is_away_is_not_forgotten() {
        let repo = Repo::new();
        let start = repo.git(&["rev-parse", "HEAD"]);
        let mine = repo.sibling("my-feature");
        repo.git(&["worktree", "add", "--quiet", "-b", "feature", mine.to_str().expect("utf-8")]);
        let away = repo.sibling("my-feature-away");
        std::fs::rename(&mine, &away).expect("move it away for the moment");
        let git = test_git();
        let path = repo.worktree_path("task");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/task", &start).await.expect("made");
        git.remove_worktree(repo.path(), &path).await.expect("removed");
        std::fs::rename(&away, &mine).expect("back");
        assert_eq!(run_git(&mine, &["symbolic-ref", "--short", "HEAD"]), "feature", "still a worktree");
    }

    #[tokio::test]
    async fn a_detached_head_checkout_is_a_fine_start() {
        let repo = Repo::new();
        let start = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "--quiet", "--detach"]);
        let path = repo.worktree_path("t");
        let made =
            test_git().ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/t", "HEAD").await.expect("made");
        assert_eq!(made.head, start);
    }

    #[tokio::test]
    async fn what_a_crash_left_is_repaired() {
        let repo = Repo::new();
        let start = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();

        // 1. The worktree's directory vanished (prune needed), its branch left with a commit.
        let path = repo.worktree_path("gone");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/gone", &start).await.expect("made");
        let work = commit_file_in(&path, "g.txt", "g\n", "work");
        std::fs::remove_dir_all(&path).expect("rm");
        let back =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/gone", &start).await.expect("repaired");
        assert!(!back.resumed);
        assert_eq!(back.head, work);

        // 2. A half-made worktree: git died while checking it out (still locked `initializing`,
        //    files missing).
        let path = repo.worktree_path("half");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/half", &start).await.expect("made");
        let admin = admin_dir_of(&path);
        std::fs::write(admin.join("locked"), "initializing").expect("lock");
        std::fs::remove_file(path.join("README")).expect("rm");
        let back =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/half", &start).await.expect("repaired");
        assert!(!back.resumed);
        assert_eq!(std::fs::read_to_string(path.join("README")).expect("README back"), "readme\n");
        assert!(
            !admin.join("locked").exists()
                || run_git(repo.path(), &["worktree", "list", "--porcelain"]).matches("locked").count() == 0
        );

        // 3. A directory left at the path that git no longer knows: a dead worktree of ours.
        let path = repo.worktree_path("dead");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/dead", &start).await.expect("made");
        let admin = admin_dir_of(&path);
        std::fs::remove_dir_all(&admin).expect("rm admin");
        let back =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/dead", &start).await.expect("repaired");
        assert!(!back.resumed);
        assert_eq!(run_git(&path, &["symbolic-ref", "--short", "HEAD"]), "claude-worker/o/tasks/dead");

        // 4. An empty directory at the path (git died before writing anything).
        let path = repo.worktree_path("empty");
        std::fs::create_dir_all(&path).expect("mkdir");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/empty", &start).await.expect("made");

        // 5. Someone else's directory is not deleted.
        let path = repo.worktree_path("theirs");
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("precious.txt"), "keep me\n").expect("write");
        let error =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/theirs", &start).await.expect_err("refused");
        assert!(error.to_string().contains("not a worktree of this repository"), "{error}");
        assert!(path.join("precious.txt").exists());
    }

    #[tokio::test]
    async fn a_merge_in_progress_and_a_stale_index_lock_are_undone_on_resume() {
        let repo = Repo::new();
        repo.commit_file("s.txt", "base\n", "s");
        let start = repo.git(&["rev-parse", "HEAD"]);
        repo.switch("other", Some(&start));
        repo.commit_file("s.txt", "other\n", "other");
        repo.switch("main", None);
        let git = test_git();
        let path = repo.worktree_path("m");
        git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/m", &start).await.expect("made");
        let mine = commit_file_in(&path, "s.txt", "mine\n", "mine");
        let merge = git_command(&path).args(["merge", "other"]).output().expect("git runs");
        assert!(!merge.status.success(), "the merge conflicts");
        let admin = admin_dir_of(&path);
        assert!(admin.join("MERGE_HEAD").exists());
        std::fs::write(admin.join("index.lock"), "").expect("a stale lock");
        let back = git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/m", &start).await.expect("resumed");
        assert!(back.resumed);
        assert_eq!(back.head, mine);
        assert!(!admin.join("MERGE_HEAD").exists());
        assert!(!admin.join("index.lock").exists());
        assert_eq!(std::fs::read_to_string(path.join("s.txt")).expect("read"), "mine\n");
        assert!(git.dirty_files(&path).await.expect("status").is_empty());
    }

    #[tokio::test]
    async fn a_branch_checked_out_elsewhere_is_named() {
        let repo = Repo::new();
        let start = repo.git(&["rev-parse", "HEAD"]);
        let git = test_git();
        git.ensure_worktree(repo.path(), &repo.worktree_path("one"), "claude-worker/o/tasks/x", &start)
            .await
            .expect("made");
        let error = git
            .ensure_worktree(repo.path(), &repo.worktree_path("two"), "claude-worker/o/tasks/x", &start)
            .await
            .expect_err("busy");
        assert!(error.to_string().contains("checked out in another worktree"), "{error}");
    }
}
