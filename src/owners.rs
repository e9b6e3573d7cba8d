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
    owners_dir(db_path).join(format!("{}.lock", sanitized(owner)))
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
    ///
    /// Creating and locking are two steps, and a probe may come between them (see [`probe`]):
    /// it may hold the lock for a moment (tried again for up to a second), and an older probe,
    /// or a person, may have removed the file (then the path no longer names the locked file,
    /// which would hide this owner: made again). The lock counts only once the path still names
    /// the file locked.
    pub fn acquire(db_path: &Path, owner: &str) -> io::Result<OwnerLock> {
        acquire_with(db_path, owner, || {})
    }
}

/// [`OwnerLock::acquire`], running `between` after the file is opened and before it is locked
/// (for the tests of the race).
fn acquire_with(db_path: &Path, owner: &str, between: impl FnMut()) -> io::Result<OwnerLock> {
    crate::files::private_dir_all(&owners_dir(db_path))?;
    let path = owner_file(db_path, owner);
    let lock = lock_file(&path, true, between)?.ok_or_else(|| io::Error::from(Errno::EWOULDBLOCK))?;
    Ok(OwnerLock { path, _lock: lock })
}

/// The one detached worker of a database holds this lock from before it opens the database
/// until it gives up its owner lock: a burst of `claude-worker run` (each starting a worker when
/// it sees no executor alive) leaves one worker, the others exit at once. Dropping it removes
/// the file and frees the lock.
pub struct WorkerLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl WorkerLock {
    /// Takes the lock; `None` when another detached worker holds it.
    pub fn try_acquire(db_path: &Path) -> io::Result<Option<WorkerLock>> {
        crate::files::private_dir_all(&owners_dir(db_path))?;
        // Not a `.lock` file: probes of owners leave it alone.
        let path = owners_dir(db_path).join("detached-worker.once");
        Ok(lock_file(&path, false, || {})?.map(|lock| WorkerLock { path, _lock: lock }))
    }
}

impl Drop for WorkerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates (if need be) and locks the file at `path`, the path still naming the file locked.
/// A lock held by another: `None`, or with `wait_briefly` tried again for up to a second (a
/// probe holds an owner's file only for a moment).
fn lock_file(path: &Path, wait_briefly: bool, mut between: impl FnMut()) -> io::Result<Option<Flock<File>>> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        // Private, never through a link, only a regular file of this user's.
        let file = crate::files::open_append(path)?;
        between();
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // Removed by its holder or a probe between our open and our lock: made again.
            Ok(lock) => {
                if names_the_same_file(path, &lock)? {
                    return Ok(Some(lock));
                }
            }
            Err((_, Errno::EWOULDBLOCK)) if !wait_briefly => return Ok(None),
            Err((_, Errno::EWOULDBLOCK)) if std::time::Instant::now() < give_up => {}
            Err((_, errno)) => return Err(io::Error::from(errno)),
        }
        if std::time::Instant::now() >= give_up {
            return Err(io::Error::other(format!("cannot lock {}: its file keeps changing", path.display())));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether `path` still names the open file `file` (same device and inode).
fn names_the_same_file(path: &Path, file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let open = file.metadata()?;
    Ok(match std::fs::symlink_metadata(path) {
        Ok(named) => named.dev() == open.dev() && named.ino() == open.ino(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
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

/// Tries the lock of one owner file: held means alive. A free lock means dead for any owner of
/// tasks (an executor locks its file before it claims anything).
///
/// A free lock's file is removed only when its owner's process is gone on this host: a file
/// whose process lives may be one an executor has just created and not yet locked, and
/// removing it would hide that executor (or make its lock fail). A file whose name cannot be
/// read as an owner's, or of another host, is left alone.
fn probe(path: &Path) -> Liveness {
    let file = match crate::files::open_existing_for_write(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Liveness::Dead,
        Err(_) => return Liveness::Unknown,
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let stale = path
                .file_stem()
                .and_then(|n| n.to_str())
                .and_then(file_owner)
                .is_some_and(|(host, pid)| host == sanitized(&this_host()) && !process_exists(pid));
            if stale && names_the_same_file(path, &lock).unwrap_or(false) {
                // Its owner is gone: remove the leftover while we hold the lock.
                let _ = std::fs::remove_file(path);
            }
            drop(lock);
            Liveness::Dead
        }
        Err((_, Errno::EWOULDBLOCK)) => Liveness::Alive,
        Err(_) => Liveness::Unknown,
    }
}

/// The host (as sanitized in file names) and pid of an owner file's name (`host_pid_started`).
fn file_owner(stem: &str) -> Option<(&str, i32)> {
    let mut parts = stem.rsplitn(3, '_');
    let started = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    started.parse::<u64>().ok()?;
    Some((host, pid))
}

/// An owner name as it appears in its file's name.
fn sanitized(owner: &str) -> String {
    owner.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect()
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
    fn a_probe_between_creating_and_locking_neither_hides_the_owner_nor_fails_its_lock() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        let host = this_host();
        let me = format!("{host}:{}:1", std::process::id());
        // Another process's probe looks at the file before it is locked.
        let mut probed = false;
        let lock = acquire_with(&db, &me, || {
            if !probed {
                probed = true;
                assert_eq!(liveness(&db, &me, &host), Liveness::Dead, "not locked yet");
            }
        })
        .expect("the lock is taken all the same");
        assert_eq!(liveness(&db, &me, &host), Liveness::Alive, "the owner is seen");
        assert!(others_alive(&db, ""));
        drop(lock);

        // A probe that holds the lock at the very moment the owner tries it.
        let other = format!("{host}:{}:2", std::process::id());
        let path = owner_file(&db, &other);
        let mut held = None;
        let lock = acquire_with(&db, &other, || {
            if held.is_none() {
                let file = crate::files::open_existing_for_write(&path).expect("open");
                let probe = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e).expect("probe lock");
                held = Some(std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    drop(probe);
                }));
            }
        })
        .expect("the owner waits for the probe to let go");
        assert_eq!(liveness(&db, &other, &host), Liveness::Alive);
        drop(lock);
        held.expect("probed").join().expect("join");
    }

    #[test]
    fn a_file_removed_before_its_lock_is_taken_is_made_again() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        let host = this_host();
        let me = format!("{host}:{}:3", std::process::id());
        let path = owner_file(&db, &me);
        let mut removed = false;
        let _lock = acquire_with(&db, &me, || {
            if !removed {
                removed = true;
                std::fs::remove_file(&path).expect("an old probe removes it");
            }
        })
        .expect("lock");
        assert!(path.exists());
        assert_eq!(liveness(&db, &me, &host), Liveness::Alive);
    }

    #[test]
    fn a_leftover_file_without_its_lock_is_dead_and_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        std::fs::create_dir_all(owners_dir(&db)).expect("mkdir");
        let host = this_host();
        let gone = format!("{host}:2000000009:9");
        let path = owner_file(&db, &gone);
        std::fs::write(&path, "").expect("leftover");
        assert_eq!(liveness(&db, &gone, &host), Liveness::Dead);
        assert!(!path.exists());
        // A free file whose process lives is dead as an owner of tasks, but left in place.
        let young = format!("{host}:{}:9", std::process::id());
        let path = owner_file(&db, &young);
        std::fs::write(&path, "").expect("created, not locked yet");
        assert_eq!(liveness(&db, &young, &host), Liveness::Dead);
        assert!(path.exists());
    }

    #[test]
    fn a_live_process_whose_file_was_removed_is_not_declared_dead() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        let me = format!("host:{}:1", std::process::id());
        assert_eq!(liveness(&db, &me, "host"), Liveness::Unknown, "left to its lease");
    }

    #[test]
    fn one_detached_worker_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("tasks.db");
        let first = WorkerLock::try_acquire(&db).expect("lock").expect("free");
        assert!(WorkerLock::try_acquire(&db).expect("lock").is_none(), "held by the first");
        assert!(!any_alive(&db), "not an owner");
        drop(first);
        assert!(std::fs::read_dir(owners_dir(&db)).expect("dir").next().is_none(), "its file is removed");
        assert!(WorkerLock::try_acquire(&db).expect("lock").is_some());
    }

    #[test]
    fn owner_file_names_parse() {
        assert_eq!(file_owner("my_host_12_34"), Some(("my_host", 12)));
        assert_eq!(file_owner("h.local_12_34"), Some(("h.local", 12)));
        assert_eq!(file_owner("garbage"), None);
    }

    #[test]
    fn host_names_with_colons_parse() {
        assert_eq!(host_of("my:host:12:34"), "my:host");
        assert_eq!(host_of("h:12:34"), "h");
        assert_eq!(pid_of("my:host:12:34"), Some(12));
    }
}
