//! One git user of a repository at a time ([`RepoLock`]). Git's own locks (`index.lock`, ref
//! locks) make a second writer fail at once instead of waiting, and several claude-worker servers
//! (and the executor's concurrent attempts) may work on one repository: each holds this lock
//! around its git operations. An exclusive `flock` on `<common git dir>/claude-worker.lock`,
//! shared by every worktree of the repository: the kernel releases it when its holder dies, so a
//! crash never leaves it held.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::GitError;

/// The lock file's name in the repository's common git directory.
pub const LOCK_FILE_NAME: &str = "claude-worker.lock";

/// The longest pause between two tries: short, because git operations are short.
const MAX_POLL: Duration = Duration::from_millis(50);

/// An exclusive lock on a repository, held until dropped.
#[derive(Debug)]
pub struct RepoLock {
    /// The locked file; dropping it unlocks and closes.
    _lock: Flock<File>,
    path: PathBuf,
}

impl RepoLock {
    /// Waits for the lock of the repository whose common git directory is `common_dir`. Waits
    /// by trying without blocking and sleeping a few milliseconds between tries, so no tokio
    /// worker thread is blocked and a caller that gives up (a dropped future) leaves nothing
    /// behind.
    pub(super) async fn acquire(common_dir: &Path) -> Result<RepoLock, GitError> {
        let path = common_dir.join(LOCK_FILE_NAME);
        let failed = |message: String| GitError::Failed { command: format!("lock {}", path.display()), message };
        let mut pause = Duration::from_millis(2);
        let mut file = crate::files::open_append(&path).map_err(|e| failed(e.to_string()))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(RepoLock { _lock: lock, path }),
                Err((back, Errno::EWOULDBLOCK | Errno::EINTR)) => file = back,
                Err((_, errno)) => return Err(failed(errno.desc().to_owned())),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_for_the_first() {
        let repo = Repo::new();
        let common = repo.path().join(".git");
        let first = test_git().lock(&common).await.expect("the first lock");
        assert_eq!(first.path(), common.join(LOCK_FILE_NAME));
        let other = test_git();
        let waiting = tokio::spawn(async move { other.lock(&repo.path().join(".git")).await.map(|_| Instant::now()) });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!waiting.is_finished(), "the second holder got the lock while the first held it");
        let released = Instant::now();
        drop(first);
        let acquired = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the second holder gets the lock once it is free")
            .expect("the task ran")
            .expect("the second lock");
        assert!(acquired >= released);
    }

    #[tokio::test]
    async fn another_process_holding_it_is_waited_for() {
        let repo = Repo::new();
        let common = repo.path().join(".git");
        let lock_file = common.join(LOCK_FILE_NAME);
        let ready = repo.sibling("ready");
        // flock(1) holds the lock until its shell ends, which waits for a file we write.
        let release = repo.sibling("release");
        let script = format!(
            "touch {ready}; while [ ! -e {release} ]; do sleep 0.02; done",
            ready = ready.display(),
            release = release.display()
        );
        let mut holder = Command::new("flock")
            .arg(&lock_file)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("flock(1) runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "flock(1) never took the lock");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let git = test_git();
        let waiting = tokio::spawn(async move { git.lock(&common).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!waiting.is_finished(), "the lock was taken while another process held it");
        std::fs::write(&release, "").expect("release");
        let lock = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the lock is taken once the other process let it go")
            .expect("the task ran");
        assert!(lock.is_ok(), "{lock:?}");
        holder.wait().expect("flock(1) ends");
    }
}
