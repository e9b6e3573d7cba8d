//! Test helpers: real repositories in temporary directories, and git isolated from the
//! developer's configuration (no global or system config, so no identity, hooks or aliases of
//! theirs can change a result).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Git;

/// The variables that keep git away from the developer's configuration.
pub const ISOLATION: &[(&str, &str)] =
    &[("GIT_CONFIG_GLOBAL", "/dev/null"), ("GIT_CONFIG_SYSTEM", "/dev/null"), ("GIT_CONFIG_NOSYSTEM", "1")];

/// A `Git` that sees no global or system configuration, and so no user identity.
pub fn test_git() -> Git {
    ISOLATION.iter().fold(Git::new(), |git, (name, value)| git.with_env(name, value))
}

/// A repository in a temporary directory, on branch `main`, with one commit (`README`).
pub struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("repo").canonicalize_or_join();
        std::fs::create_dir(&path).expect("the repository's directory");
        let repo = Repo { _dir: dir, path };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.commit_file("README", "readme\n", "initial");
        repo
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A directory next to the repository (inside the same temporary directory).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.path.parent().expect("the temporary directory").join(name)
    }

    /// Where a task's worktree named `name` goes: outside the repository, next to it.
    pub fn worktree_path(&self, name: &str) -> PathBuf {
        self.sibling("worktrees").join(name)
    }

    /// Runs git in the repository; it must succeed. Returns its trimmed standard output.
    pub fn git(&self, args: &[&str]) -> String {
        run_git(&self.path, args)
    }

    /// Writes `file` and commits it on the current branch; returns the new HEAD.
    pub fn commit_file(&self, file: &str, content: &str, message: &str) -> String {
        commit_file_in(&self.path, file, content, message)
    }

    /// Checks out `branch` (created at `start` when given).
    pub fn switch(&self, branch: &str, start: Option<&str>) {
        match start {
            Some(start) => self.git(&["checkout", "--quiet", "-b", branch, start]),
            None => self.git(&["checkout", "--quiet", branch]),
        };
    }
}

/// Writes `file` in `dir` and commits it; returns the new HEAD.
pub fn commit_file_in(dir: &Path, file: &str, content: &str, message: &str) -> String {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("the file's directory");
    }
    std::fs::write(&path, content).expect("the file");
    run_git(dir, &["add", "--", file]);
    run_git(dir, &["commit", "--quiet", "-m", message]);
    run_git(dir, &["rev-parse", "HEAD"])
}

/// The administrative directory of the worktree at `dir` (its `HEAD`, index and lock files), as
/// git names it.
pub fn admin_dir_of(dir: &Path) -> PathBuf {
    PathBuf::from(run_git(dir, &["rev-parse", "--path-format=absolute", "--git-dir"]))
}

/// Runs git in `dir`, isolated, with a test identity and local-file submodules allowed; it must
/// succeed. Returns its trimmed standard output.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir).args(args).output().expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `git` in `dir`, isolated, with a test identity.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command.current_dir(dir).args(["-c", "protocol.file.allow=always"]).envs(ISOLATION.iter().copied()).envs([
        ("GIT_AUTHOR_NAME", "Test"),
        ("GIT_AUTHOR_EMAIL", "test@example.com"),
        ("GIT_COMMITTER_NAME", "Test"),
        ("GIT_COMMITTER_EMAIL", "test@example.com"),
        ("LC_ALL", "C"),
    ]);
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        command.env_remove(name);
    }
    command
}

/// The content of `file` in `commit`.
pub fn show(dir: &Path, commit: &str, file: &str) -> String {
    let output = git_command(dir).args(["show", &format!("{commit}:{file}")]).output().expect("git runs");
    assert!(output.status.success(), "{commit}:{file}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

trait CanonicalizeOrJoin {
    fn canonicalize_or_join(self) -> PathBuf;
}

impl CanonicalizeOrJoin for PathBuf {
    /// The temporary directory may sit behind a symbolic link (`/tmp` on some systems): git
    /// answers with real paths, so the tests compare against real paths.
    fn canonicalize_or_join(self) -> PathBuf {
        match (self.parent().and_then(|p| p.canonicalize().ok()), self.file_name()) {
            (Some(parent), Some(name)) => parent.join(name),
            _ => self,
        }
    }
}
