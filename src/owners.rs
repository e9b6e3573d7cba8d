//! Who is alive on a database. Every executor (server or worker) holds an exclusive `flock` on
//! its own file in `<database>.owners/` for as long as it lives; the kernel drops the lock when
//! the process dies, however it dies. Another process can therefore tell at once that an owner
//! of running tasks is gone (its lock is free, or its file missing) instead of waiting for the
//! lease to run out, and a server that exits can tell whether any other executor is left.
//!
//! Locks only speak for processes on this host: for an owner on another host (a database on a
//! shared disk) the answer is [`Liveness::Unknown`] and recovery waits for its lease.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock an executor holds while it lives. Dropping it removes the file and frees the lock.
pub struct OwnerLock {
    path: PathBuf,
    _lock: Flock<File>,
}

/// What the owner files say about an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// An owner on another host: only its lease tells.
    Unknown,
}

/// The directory of owner files next to the database.
pub fn owners_dir(db_path: &Path) -> PathBuf {
    let mut name = OsString::from(db_path.as_os_str());
    name.push(".owners");
    PathBuf::from(name)
}

fn owner_file(db_path: &Path, owner: &str) -> PathBuf {
    let name: String =
        owner.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect();
    owners_dir(db_path).join(format!("{name}.lock"))
}

/// The host part of an owner name (`host:pid:started`).
fn host_of(owner: &str) -> &str {
    owner.rsplitn(3, ':').nth(2).unwrap_or("")
}

/// The pid part of an owner name.
fn pid_of(owner: &str) -> Option<i32> {
    owner.rsplit(':').nth(1)?.parse().ok()
}

impl OwnerLock {
    /// Creates and locks the owner file of `owner`.
    pub fn acquire(db_path: &Path, owner: &str) -> io::Result<OwnerLock> {
        crate::files::private_dir_all(&owners_dir(db_path))?;
        let path = owner_file(db_path, owner);
        // Private, never through a link, only a regular file of this user's.
        let file = crate::files::open_append(&path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| io::Error::from(errno))?;
        Ok(OwnerLock { path, _lock: lock })
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Removed while still locked: nobody can mistake the file for a dead owner's leftover.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the executor named `owner` is alive, as far as this host can tell.
pub fn liveness(db_path: &Path, owner: &str, this_host: &str) -> Liveness {
    if host_of(owner) != this_host {
        return Liveness::Unknown;
    }
    let path = owner_file(db_path, owner);
    if !path.exists() {
        // The owner removed it on its way out, or someone removed it under a live owner: only
        // a gone process is dead; otherwise its lease decides.
        return if pid_of(owner).is_some_and(process_exists) { Liveness::Unknown } else { Liveness::Dead };
    }
    probe(&path)
}

fn process_exists(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// Tries the lock of one owner file: held means alive. A free lock's file is removed.
fn probe(path: &Path) -> Liveness {
    let file = match crate::files::open_existing_for_write(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Liveness::Dead,
        Err(_) => return Liveness::Unknown,
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // Nobody holds it: its owner is gone. Remove the leftover while we hold the lock.
            let _ = std::fs::remove_file(path);
            drop(lock);
            Liveness::Dead
        }
        Err((_, Errno::EWOULDBLOCK)) => Liveness::Alive,
        Err(_) => Liveness::Unknown,
    }
}

/// Whether any executor holds its lock on this database (on this host).
pub fn any_alive(db_path: &Path) -> bool {
    others_alive(db_path, "")
}

/// This host's name, as owner names carry it.
pub fn this_host() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".to_owned())
}

/// Whether any executor other than `me` holds its lock on this database (on this host).
pub fn others_alive(db_path: &Path, me: &str) -> bool {
    let mine = owner_file(db_path, me);
    let Ok(entries) = std::fs::read_dir(owners_dir(db_path)) else { return false };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| *p != mine && p.extension().is_some_and(|x| x == "lock"))
        .any(|p| probe(&p) == Liveness::Alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_alive_and_a_dropped_one_dead() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        // Owners named after pids that cannot exist (pid_max is at most 2^22).
        let (a, b) = ("host:2000000000:1", "host:2000000001:2");
        let lock_a = OwnerLock::acquire(&db, a).expect("lock a");
        assert_eq!(liveness(&db, a, "host"), Liveness::Alive);
        assert_eq!(liveness(&db, b, "host"), Liveness::Dead, "no file: never lived or gone");
        assert_eq!(liveness(&db, a, "other-host"), Liveness::Unknown);
        assert!(others_alive(&db, b));
        assert!(!others_alive(&db, a));
        drop(lock_a);
        assert_eq!(liveness(&db, a, "host"), Liveness::Dead);
        assert!(!others_alive(&db, b));
    }

    #[test]
    fn a_leftover_file_without_its_lock_is_dead_and_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        std::fs::create_dir_all(owners_dir(&db)).expect("mkdir");
        let path = owner_file(&db, "host:2000000009:9");
        std::fs::write(&path, "").expect("leftover");
        assert_eq!(liveness(&db, "host:2000000009:9", "host"), Liveness::Dead);
        assert!(!path.exists());
    }

    #[test]
    fn a_live_process_whose_file_was_removed_is_not_declared_dead() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        let me = format!("host:{}:1", std::process::id());
        assert_eq!(liveness(&db, &me, "host"), Liveness::Unknown, "left to its lease");
    }

    #[test]
    fn host_names_with_colons_parse() {
        assert_eq!(host_of("my:host:12:34"), "my:host");
        assert_eq!(host_of("h:12:34"), "h");
        assert_eq!(pid_of("my:host:12:34"), Some(12));
    }
}
