//! The only module that runs git: every git operation of task isolation (a worktree and a branch
//! per task, merges along the dependency graph, the integration branch, bringing it into the
//! user's checkout), each git command run through [`crate::runner::run_command`] — a process
//! group of its own, a timeout, a stop token — never by spawning git here.
//!
//! [`Git`] holds how git is run (binary, timeout, grace, extra environment, stop token) and checks
//! its version once, lazily: merges need `git merge-tree --write-tree` (git 2.38). Its operations
//! live in files by idea: [`refname`] (branch names, pure), [`version`] (the version check, pure),
//! [`status`] (reading `git status -z`, pure, and the dirty-files question), [`merge`] (merging
//! commits without a worktree), [`worktree`] (a task's worktree: made, resumed, repaired,
//! removed), [`stage`] (a waiting task's worktree made before it starts), [`spare`] (finished
//! worktrees kept clean for the next tasks that start), [`submodule`]
//! (initialising a new worktree's submodules offline), [`commit`] (a task's result commit, the
//! fallback identity), [`branches`] (moving and deleting branches),
//! [`checkout`] (merging into the user's own checkout), [`lock`] (one git user of a repository at
//! a time, across processes).
//!
//! Every command runs with `LC_ALL=C` (its messages are read in a few places), without prompts
//! (`GIT_TERMINAL_PROMPT=0`, no editor), without optional locks (`GIT_OPTIONAL_LOCKS=0`: a
//! `git status` of ours never takes the index lock of a checkout someone works in), and without
//! the variables that would point it at another repository (`GIT_DIR`, `GIT_WORK_TREE`, ...).
//! Git's own locks (`index.lock`, ref locks) fail instead of waiting: callers that may run
//! concurrently on one repository hold a [`RepoLock`] ([`Git::lock`]) around their operations.

mod branches;
mod checkout;
mod commit;
mod lock;
mod merge;
mod refname;
mod spare;
mod stage;
mod status;
mod submodule;
mod version;
mod worktree;

#[cfg(test)]
mod testing;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::runner::{CommandSpec, Exit, Keep, run_command};

pub use branches::BranchCleanup;
pub use checkout::{CheckoutMerge, CheckoutOutcome};
pub use lock::{LOCK_FILE_NAME, RepoLock};
pub use merge::{MergeTree, Merged, parse_merge_tree};
pub use refname::{BRANCH_ROOT, branch_name, orchestration_prefix, safe_component};
pub use status::{StatusEntry, parse_status};
pub use version::{GitVersion, MIN_VERSION, parse_version};
pub use worktree::{Worktree, WorktreeEntry, parse_worktree_list};

/// Whether `rev` is a whole object name (40 hex digits, or 64 in a SHA-256 repository): then it
/// needs no `rev-parse` to be used as a commit.
pub fn is_full_sha(rev: &str) -> bool {
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A commit as people read it: its first 12 hex digits.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Runs git for the isolation feature. Cheap to clone: clones share the version check.
#[derive(Clone, Debug)]
pub struct Git {
    /// The git program: `git` (found on `PATH`) unless [`Git::with_binary`] said otherwise.
    binary: PathBuf,
    /// How long one git command may run before it is stopped (a checkout of a large repository,
    /// or cloning a submodule, takes a while; a hung hook or credential helper must not hang a
    /// task's start for ever).
    timeout: Duration,
    /// Between SIGTERM and SIGKILL when a command is stopped.
    kill_grace: Duration,
    /// Variables set for every command on top of this process's environment (tests isolate git
    /// from the developer's configuration with them: the process's own environment is shared by
    /// every test of the binary and cannot be changed safely).
    env: Vec<(OsString, OsString)>,
    /// Stops a running command (the server shutting down); a stopped command is a
    /// [`GitError::Failed`] that says so.
    stop: CancellationToken,
    /// The version check, done by the first command of this `Git` (and its clones).
    version: Arc<OnceCell<Result<GitVersion, GitError>>>,
}

/// What went wrong running git. Each message says what to do when there is something to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The directory is not inside a git work tree.
    #[error(
        "{} is not inside a git repository: isolation runs each task in a git worktree, so the working \
         directory must be inside a git work tree (run `git init` there and commit, or choose a directory \
         of an existing repository)",
        dir.display()
    )]
    NotARepository { dir: PathBuf },
    /// git is not installed (or not where [`Git::with_binary`] said).
    #[error(
        "git was not found: isolation needs git 2.38 or newer; install it (for example `apt install git`, \
         `dnf install git` or `brew install git`) and make sure it is on PATH"
    )]
    GitMissing,
    /// git is older than 2.38, which has no `git merge-tree --write-tree`.
    #[error(
        "git {version} is too old: isolation needs git 2.38 or newer (for `git merge-tree --write-tree`); \
         install a newer git (https://git-scm.com/downloads; on Debian or Ubuntu from backports or the \
         git-core PPA)"
    )]
    TooOld { version: String },
    /// A revision that names no commit.
    #[error("{rev:?} names no commit in this repository")]
    UnknownRevision { rev: String },
    /// The user's checkout has uncommitted changes (or untracked files the merge would write).
    #[error(
        "the checkout has uncommitted changes, so nothing was merged: {}; commit or stash them and merge again",
        shown_files(files)
    )]
    Dirty { files: Vec<String> },
    /// Merging into the user's checkout would conflict.
    #[error(
        "merging would conflict in {}, so nothing was merged: merge the branch by hand (`git merge`) and \
         resolve the conflicts, or resolve them on the branch first",
        shown_files(files)
    )]
    Conflict { files: Vec<String> },
    /// The user's checkout is not on a branch, so there is no branch to merge into.
    #[error(
        "the checkout at {} has a detached HEAD, so there is no branch to merge into: check out a branch \
         (`git switch <branch>`) and merge again",
        dir.display()
    )]
    DetachedHead { dir: PathBuf },
    /// A branch of a task's name that the task did not make (made by hand, or left by a run
    /// whose database is gone): never taken over.
    #[error(
        "the branch {branch} exists already and is not this task's (made by hand, or left by a run whose \
         database is gone): delete it (git branch -D {branch}) and retry the task"
    )]
    BranchNotOurs { branch: String },
    /// The branch a task's worktree needs is checked out in another worktree.
    #[error("branch {branch} is checked out in another worktree, {}: remove that worktree first", worktree.display())]
    BranchCheckedOut { branch: String, worktree: PathBuf },
    /// Any other failure: the command and the end of what git said.
    #[error("`{command}` failed: {message}")]
    Failed { command: String, message: String },
}

/// Where a directory sits in its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoInfo {
    /// The top of the work tree holding the directory (absolute, symbolic links resolved).
    pub top: PathBuf,
    /// The repository's common git directory (`.git` of the main checkout, shared by all of its
    /// worktrees; absolute): where the [`RepoLock`] file lives.
    pub common_dir: PathBuf,
    /// The directory relative to `top` (empty at the top): a task in `repo/backend` runs in
    /// `<worktree>/backend`.
    pub subdir: PathBuf,
}

/// At most this many files are named in a message; the rest are counted.
const FILES_SHOWN: usize = 10;

fn shown_files(files: &[String]) -> String {
    let mut shown = files.iter().take(FILES_SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if files.len() > FILES_SHOWN {
        shown.push_str(&format!(" and {} more", files.len() - FILES_SHOWN));
    }
    if shown.is_empty() { "(no files named)".to_owned() } else { shown }
}

/// Variables that would make git work on another repository than the directory it runs in.
const REPOSITORY_VARIABLES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// How much of git's standard error a failure keeps in its message.
const MESSAGE_TAIL: usize = 2000;

/// What a git command printed and how it exited.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
    /// `git <args>`, for messages.
    command: String,
}

impl Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The failure of this command, with the end of what git said.
    fn failed(&self) -> GitError {
        let message = tail(self.stderr.trim(), MESSAGE_TAIL);
        let message = if message.is_empty() { format!("exit code {}", self.code) } else { message };
        GitError::Failed { command: self.command.clone(), message }
    }

    /// `Ok` for exit code 0, else the failure.
    fn ok(self) -> Result<Output, GitError> {
        if self.code == 0 { Ok(self) } else { Err(self.failed()) }
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

impl Default for Git {
    fn default() -> Git {
        Git::new()
    }
}

impl Git {
    /// `git` from `PATH`, two minutes per command, five seconds of grace.
    pub fn new() -> Git {
        Git::with_binary("git")
    }

    /// Runs the git program at `path` (or found on `PATH` when it has no `/`).
    pub fn with_binary(path: impl Into<PathBuf>) -> Git {
        Git {
            binary: path.into(),
            timeout: Duration::from_secs(120),
            kill_grace: Duration::from_secs(5),
            env: Vec::new(),
            stop: CancellationToken::new(),
            version: Arc::new(OnceCell::new()),
        }
    }

    /// How long one git command may run.
    pub fn with_timeout(mut self, timeout: Duration) -> Git {
        self.timeout = timeout;
        self
    }

    /// Between SIGTERM and SIGKILL when a command is stopped.
    pub fn with_kill_grace(mut self, grace: Duration) -> Git {
        self.kill_grace = grace;
        self
    }

    /// A variable set for every git command (on top of this process's environment).
    pub fn with_env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Git {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Commands stop (and fail) when `stop` is cancelled.
    pub fn with_stop(mut self, stop: CancellationToken) -> Git {
        self.stop = stop;
        self
    }

    /// The version of git, checked: [`GitError::GitMissing`] or [`GitError::TooOld`] when it
    /// cannot do what isolation needs. Asked once per `Git` (and its clones); every operation
    /// calls it first.
    pub async fn version(&self) -> Result<GitVersion, GitError> {
        self.version
            .get_or_init(|| async {
                let output = self.exec(Path::new("/"), &[OsStr::new("version")], &[]).await?.ok()?;
                version::check(&output.stdout_text())
            })
            .await
            .clone()
    }

    /// Where `dir` sits in its repository; [`GitError::NotARepository`] when it is in none.
    pub async fn discover(&self, dir: &Path) -> Result<RepoInfo, GitError> {
        if !dir.is_dir() {
            return Err(GitError::NotARepository { dir: dir.to_owned() });
        }
        let output = self
            .command(
                dir,
                ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", "--show-prefix"],
            )
            .await?;
        if output.code != 0 {
            if output.stderr.contains("not a git repository") || output.stderr.contains("must be run in a work tree") {
                return Err(GitError::NotARepository { dir: dir.to_owned() });
            }
            return Err(output.failed());
        }
        let text = output.stdout_text();
        let mut lines = text.lines();
        let (Some(top), Some(common_dir)) = (lines.next(), lines.next()) else {
            return Err(GitError::Failed { command: output.command, message: format!("unexpected answer {text:?}") });
        };
        let prefix = lines.next().unwrap_or("").trim_end_matches('/');
        Ok(RepoInfo { top: PathBuf::from(top), common_dir: PathBuf::from(common_dir), subdir: PathBuf::from(prefix) })
    }

    /// The full sha of the commit `rev` names (`HEAD` works with a detached HEAD too).
    pub async fn resolve_commit(&self, repo: &Path, rev: &str) -> Result<String, GitError> {
        let peeled = format!("{rev}^{{commit}}");
        let output =
            self.command(repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", peeled.as_str()]).await?;
        match output.code {
            0 => Ok(output.stdout_text().trim().to_owned()),
            1 if output.stderr.trim().is_empty() => Err(GitError::UnknownRevision { rev: rev.to_owned() }),
            _ if output.stderr.contains("not a git repository") => {
                Err(GitError::NotARepository { dir: repo.to_owned() })
            }
            _ => Err(output.failed()),
        }
    }

    /// A short summary of the changes between two commits: `3 files changed, 10 insertions(+),
    /// 2 deletions(-)`, or `no changes`.
    pub async fn diffstat(&self, repo: &Path, from: &str, to: &str) -> Result<String, GitError> {
        let output = self.command(repo, ["diff", "--shortstat", "--no-ext-diff", from, to, "--"]).await?.ok()?;
        let text = output.stdout_text();
        let text = text.trim();
        Ok(if text.is_empty() { "no changes".to_owned() } else { text.to_owned() })
    }

    /// Serialises git operations on the repository whose common git directory is `common_dir`
    /// ([`RepoInfo::common_dir`]), across threads and processes, until the lock is dropped.
    pub async fn lock(&self, common_dir: &Path) -> Result<RepoLock, GitError> {
        RepoLock::acquire(common_dir).await
    }

    /// [`Git::lock`] on the repository `dir` is in, found first ([`Git::discover`]).
    pub async fn lock_repository(&self, dir: &Path) -> Result<RepoLock, GitError> {
        let info = self.discover(dir).await?;
        self.lock(&info.common_dir).await
    }

    /// Runs `git <args>` in `dir` after the version check; any exit code is an `Ok` answer.
    async fn command<I, S>(&self, dir: &Path, args: I) -> Result<Output, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command_with_env(dir, args, &[]).await
    }

    /// [`Git::command`] with `env` set for this command only.
    async fn command_with_env<I, S>(&self, dir: &Path, args: I, env: &[(&str, &str)]) -> Result<Output, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.version().await?;
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        self.exec(dir, &refs, env).await
    }

    /// Runs `git <args>` in `dir`; any exit code is an `Ok` answer, a command that could not be
    /// started or was stopped an error.
    async fn exec(&self, dir: &Path, args: &[&OsStr], env: &[(&str, &str)]) -> Result<Output, GitError> {
        let mut spec = CommandSpec::new(&self.binary, dir).args(args.iter().copied());
        spec.timeout = self.timeout;
        spec.kill_grace = self.kill_grace;
        spec.stdout = Keep::Head(64 * 1024 * 1024);
        spec.stderr_tail = 16 * 1024;
        spec.env_remove = REPOSITORY_VARIABLES.iter().map(OsString::from).collect();
        spec.env = [
            ("LC_ALL", "C"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_OPTIONAL_LOCKS", "0"),
            ("GIT_EDITOR", ":"),
            ("GIT_MERGE_AUTOEDIT", "no"),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .chain(self.env.iter().cloned())
        .chain(env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
        .collect();
        let command = std::iter::once("git".to_owned())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let report = run_command(&spec, &self.stop).await;
        if report.spawn_error.is_some() {
            if !program_exists(&self.binary) {
                return Err(GitError::GitMissing);
            }
            return Err(GitError::Failed { command, message: report.ending() });
        }
        if report.stopped.is_some() {
            return Err(GitError::Failed { command, message: report.ending() });
        }
        if report.stdout_cut > 0 {
            return Err(GitError::Failed { command, message: "its answer was too long".to_owned() });
        }
        let code = match report.exit {
            Some(Exit::Code(code)) => code,
            _ => return Err(GitError::Failed { command, message: report.ending() }),
        };
        let stderr = report.stderr_text();
        Ok(Output { code, stdout: report.stdout, stderr, command })
    }

    /// The value of an environment variable as git will see it.
    fn env_var(&self, name: &str) -> Option<OsString> {
        if REPOSITORY_VARIABLES.contains(&name) {
            return None;
        }
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var_os(name))
    }
}

/// Whether `program` can be found: a path as it is, a bare name on `PATH`.
fn program_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Splits NUL-terminated output into its fields (a last field without a NUL counts too).
fn nul_fields(bytes: &[u8]) -> Vec<String> {
    let mut fields: Vec<String> = bytes.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    if bytes.last() == Some(&0) || bytes.is_empty() {
        fields.pop();
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn whole_object_names_are_told_from_other_revisions() {
        assert!(is_full_sha(&"a".repeat(40)));
        assert!(is_full_sha(&"0123456789abcdef".repeat(4)));
        assert!(!is_full_sha("HEAD"));
        assert!(!is_full_sha(&"A".repeat(40)), "git prints lower case");
        assert!(!is_full_sha(&"a".repeat(39)));
        assert!(!is_full_sha(&"g".repeat(40)));
    }

    #[test]
    fn nul_fields_split_output() {
        assert_eq!(nul_fields(b"a\0b\0"), ["a", "b"]);
        assert_eq!(nul_fields(b"a\0\0b"), ["a", "", "b"]);
        assert!(nul_fields(b"").is_empty());
    }

    #[test]
    fn messages_name_a_few_files_and_count_the_rest() {
        let files: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
        let message = GitError::Conflict { files }.to_string();
        assert!(message.contains("f0, f1") && message.contains("and 2 more"), "{message}");
    }

    #[tokio::test]
    async fn a_missing_git_is_named_as_such() {
        let git = Git::with_binary("/nonexistent/git");
        assert_eq!(git.version().await, Err(GitError::GitMissing));
        let dir = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(git.discover(dir.path()).await, Err(GitError::GitMissing));
    }

    #[tokio::test]
    async fn an_old_git_is_refused_with_what_to_install() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = dir.path().join("git");
        std::fs::write(&fake, "#!/bin/sh\necho 'git version 2.34.1'\n").expect("the fake git");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let error = Git::with_binary(&fake).discover(dir.path()).await.expect_err("too old");
        assert_eq!(error, GitError::TooOld { version: "2.34.1".to_owned() });
        assert!(error.to_string().contains("2.38"), "{error}");
    }

    #[tokio::test]
    async fn a_hanging_git_is_stopped_at_its_timeout() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = dir.path().join("git");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1\" = version ] && { echo 'git version 2.40.0'; exit 0; }\nexec sleep 30\n",
        )
        .expect("the fake git");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let git = Git::with_binary(&fake)
            .with_timeout(Duration::from_millis(200))
            .with_kill_grace(Duration::from_millis(100));
        let error = git.resolve_commit(dir.path(), "HEAD").await.expect_err("stopped");
        assert!(matches!(&error, GitError::Failed { message, .. } if message.contains("timeout")), "{error:?}");
    }

    #[tokio::test]
    async fn discover_finds_top_common_dir_and_subdir() {
        let repo = Repo::new();
        std::fs::create_dir_all(repo.path().join("backend/src")).expect("mkdir");
        let info = test_git().discover(&repo.path().join("backend/src")).await.expect("discover");
        let top = repo.path().canonicalize().expect("canonical");
        assert_eq!(info.top, top);
        assert_eq!(info.common_dir, top.join(".git"));
        assert_eq!(info.subdir, PathBuf::from("backend/src"));
        let info = test_git().discover(repo.path()).await.expect("discover");
        assert_eq!(info.subdir, PathBuf::new());
    }

    #[tokio::test]
    async fn discover_outside_a_repository_says_how_to_make_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let git = test_git().with_env("GIT_CEILING_DIRECTORIES", dir.path().parent().expect("parent"));
        let error = git.discover(dir.path()).await.expect_err("not a repository");
        assert!(matches!(error, GitError::NotARepository { .. }), "{error:?}");
        assert!(error.to_string().contains("git init"), "{error}");
    }

    #[tokio::test]
    async fn resolve_commit_works_on_a_detached_head_and_names_unknown_revisions() {
        let repo = Repo::new();
        let first = repo.commit_file("a.txt", "one\n", "first");
        repo.commit_file("a.txt", "two\n", "second");
        repo.git(&["checkout", "--quiet", "--detach", &first]);
        let git = test_git();
        assert_eq!(git.resolve_commit(repo.path(), "HEAD").await.expect("HEAD"), first);
        assert_eq!(
            git.resolve_commit(repo.path(), "no-such-branch").await,
            Err(GitError::UnknownRevision { rev: "no-such-branch".to_owned() })
        );
        assert_eq!(
            git.resolve_commit(repo.path(), "--output=x").await,
            Err(GitError::UnknownRevision { rev: "--output=x".to_owned() })
        );
    }

    #[tokio::test]
    async fn diffstat_is_short() {
        let repo = Repo::new();
        let first = repo.commit_file("a.txt", "one\n", "first");
        let second = repo.commit_file("b.txt", "two\nthree\n", "second");
        let git = test_git();
        assert_eq!(
            git.diffstat(repo.path(), &first, &second).await.expect("diffstat"),
            "1 file changed, 2 insertions(+)"
        );
        assert_eq!(git.diffstat(repo.path(), &first, &first).await.expect("diffstat"), "no changes");
    }
}
