//! The files and directories claude-worker writes, and the directories it is willing to write in.
//!
//! Everything claude-worker writes holds prompts or what tasks printed, and a file opened for
//! writing through a symbolic link writes to whatever the link points at. So:
//!
//! - every directory it creates is `0700` and every file `0600` ([`private_dir_all`],
//!   [`open_append`], [`create_new`]);
//! - no file is ever opened through a symbolic link (`O_NOFOLLOW`: the open fails with `ELOOP`,
//!   [`is_link_refusal`]), a file appended to must be a regular file of this user's with no other
//!   name (hard link) (else the open is refused), and a new file is created exclusively;
//! - before anything is written, [`check_dirs`] refuses a database or log directory that another
//!   user owns or that others can write to: whoever can write there can plant links, or files of
//!   their own, where claude-worker's files go. [`dir_problem`] is that decision.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why a directory is not safe to write in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirProblem {
    /// Another user owns it: they can change its mode and plant anything in it at any time.
    OwnedByOther { owner: u32 },
    /// Its group or everyone may create files in it (the sticky bit does not help: it only
    /// stops others from removing or renaming files that are not theirs, not from planting new
    /// ones where claude-worker's files will go). `shared`: it is not this user's to make
    /// private: root's, and either we are not root or it is sticky like `/tmp`, a directory
    /// meant for everyone.
    WritableByOthers { mode: u32, shared: bool },
}

/// Whether claude-worker, running as `our_uid`, may keep its files in a directory owned by
/// `owner` with permission bits `mode`. Root may own it too: root can do anything anyway.
pub fn dir_problem(owner: u32, mode: u32, our_uid: u32) -> Option<DirProblem> {
    if owner != our_uid && owner != 0 {
        return Some(DirProblem::OwnedByOther { owner });
    }
    if mode & 0o022 != 0 {
        // Another user's (root's: we are not root), or root's and sticky, like /tmp.
        let shared = owner != our_uid || (owner == 0 && mode & 0o1000 != 0);
        return Some(DirProblem::WritableByOthers { mode: mode & 0o7777, shared });
    }
    None
}

/// A directory claude-worker refuses to use, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{}; claude-worker wrote nothing. {}", self.problem(), self.fix())]
pub struct UnsafeDir {
    /// What the directory is for: "home", "database directory", ...
    pub what: &'static str,
    pub path: PathBuf,
    pub problem: DirProblem,
    /// The setting that chooses another place.
    pub setting: &'static str,
}

impl UnsafeDir {
    /// What is wrong, and why it matters.
    pub fn problem(&self) -> String {
        let (what, path) = (self.what, self.path.display());
        let who = match self.problem {
            DirProblem::OwnedByOther { owner } => format!("belongs to another user (uid {owner})"),
            DirProblem::WritableByOthers { mode, .. } => format!("can be written by other users (mode {mode:o})"),
        };
        format!(
            "the {what} {path} {who}, who could make claude-worker overwrite this user's files through links \
             planted there"
        )
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        let (path, setting) = (self.path.display(), self.setting);
        match self.problem {
            DirProblem::OwnedByOther { .. } => format!(
                "Give it to this user and make it private (as root: chown {us} {path} && chmod 700 {path}), or \
                 set {setting} to a directory of this user's own",
                us = our_user_name()
            ),
            DirProblem::WritableByOthers { shared: false, .. } => {
                format!("Make it private (chmod 700 {path}), or set {setting} to a private directory")
            }
            // Making /tmp private would break everyone else: go elsewhere instead.
            DirProblem::WritableByOthers { shared: true, .. } => format!(
                "It is shared with other users: set {setting} to a place in a directory of this user's own \
                 (make one with mkdir -m 700)"
            ),
        }
    }
}

/// The name of the user this process runs as (its uid when it has none).
fn our_user_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |user| user.name)
}

/// The effective uid of this process.
pub fn our_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Refuses, before anything is written, the directories of `config` that others could plant
/// files in: the database's directory, the log directory, and (when they exist) the task log
/// directory and the owner lock directory inside them. A directory that does not exist yet is
/// fine: claude-worker creates it, private. The checks follow symbolic links: a home that is a
/// link of the user's own to a private directory elsewhere is fine.
pub fn check_dirs(config: &Config) -> Result<(), UnsafeDir> {
    let db_dir = config.db_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let role = |path: &Path, what: &'static str, setting: &'static str| {
        if path == config.home { ("home", "CLAUDE_WORKER_HOME") } else { (what, setting) }
    };
    let owners = crate::owners::owners_dir(&config.db_path);
    let task_logs = config.task_log_dir();
    let dirs = [
        (db_dir.to_owned(), role(db_dir, "database directory", "CLAUDE_WORKER_DB")),
        (config.log_dir.clone(), role(&config.log_dir, "log directory", "CLAUDE_WORKER_LOG_DIR")),
        (owners, ("owner lock directory", "CLAUDE_WORKER_DB")),
        (task_logs, ("task log directory", "CLAUDE_WORKER_LOG_DIR")),
    ];
    let us = our_uid();
    for (path, (what, setting)) in dirs {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if let Some(problem) = dir_problem(meta.uid(), meta.mode(), us) {
            return Err(UnsafeDir { what, path, problem, setting });
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each private (`0700`). An existing directory is left
/// as it is, but must pass [`dir_problem`]: one that did not exist when [`check_dirs`] looked
/// may have been made since by someone else (in a parent such as /tmp), and is refused then.
pub fn private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::metadata(dir)?;
    match dir_problem(meta.uid(), meta.mode(), our_uid()) {
        None => Ok(()),
        Some(problem) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            UnsafeDir { what: "directory", path: dir.to_owned(), problem, setting: "CLAUDE_WORKER_HOME" }.problem(),
        )),
    }
}

/// Makes the database file at `db_path` and its `-wal` and `-shm` files private (`0600`) when
/// they are this user's and others may read them (a database made by an older version or by
/// another tool; SQLite gives the -wal and -shm files the database's own mode).
pub fn make_private(db_path: &Path) -> io::Result<()> {
    let us = our_uid();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.uid() == us && meta.mode() & 0o077 != 0 => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `O_NOFOLLOW`: the open fails (`ELOOP`) when the last component is a symbolic link.
/// `O_NONBLOCK`: a FIFO planted where a file should be does not hang the open (it fails, or is
/// refused below as not a regular file); it changes nothing for a regular file.
const NO_LINKS: i32 = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;

/// Opens `path` for appending, creating it private (`0600`) if needed. Refused: a symbolic link
/// ([`is_link_refusal`]), anything but a regular file, and a file of another user. A file of
/// this user's that others may read or write is made private.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(NO_LINKS)
        .open(path)
        .map_err(|e| explained(path, e))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file: claude-worker does not write to it",
            path.display()
        )));
    }
    if meta.uid() != our_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to another user (uid {}): claude-worker does not write to it",
                path.display(),
                meta.uid()
            ),
        ));
    }
    // A hard link is another name of a file that may live anywhere on the file system (another
    // user could have made one, to a file of ours, while they could write to the directory).
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "{} has {} names (hard links), so it may be another file of this user's: claude-worker does \
             not write to it (remove it, and check who can write to its directory)",
            path.display(),
            meta.nlink()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Creates a new private file (`0600`) for reading and writing; an existing file or link there
/// is an error (`AlreadyExists`).
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(NO_LINKS)
        .open(path)
        .map_err(|e| explained(path, e))
}

/// Replaces whatever is at `path` (a leftover file, or a link: the link itself is removed, never
/// what it points at) with a new empty private file.
pub fn create_replacing(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    create_new(path)
}

/// Opens an existing file for writing, never through a symbolic link.
pub fn open_existing_for_write(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).custom_flags(NO_LINKS).open(path).map_err(|e| explained(path, e))
}

/// Opens a file of claude-worker's for reading, never through a symbolic link: a link planted
/// at a task's log must not show another file to whoever reads the log.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(NO_LINKS).open(path).map_err(|e| explained(path, e))
}

/// Whether an open failed because its path was a symbolic link.
pub fn is_link_refusal(error: &io::Error) -> bool {
    error.raw_os_error() == Some(nix::libc::ELOOP) || error.get_ref().is_some_and(|inner| inner.is::<LinkRefused>())
}

/// An open refused because the path was a symbolic link (`ELOOP` under `O_NOFOLLOW`), said so
/// that a person knows what to look at.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is a symbolic link, which claude-worker never writes or reads through (someone put it there: remove \
     it, and check who can write to its directory)",
    path.display()
)]
pub struct LinkRefused {
    pub path: PathBuf,
}

/// The error of an open, with a sentence when the path was a symbolic link.
fn explained(path: &Path, error: io::Error) -> io::Error {
    if error.raw_os_error() == Some(nix::libc::ELOOP) {
        return io::Error::other(LinkRefused { path: path.to_owned() });
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn a_private_directory_of_ours_or_roots_is_fine() {
        for mode in [0o700, 0o755, 0o750, 0o711, 0o500, 0o40700] {
            assert_eq!(dir_problem(ME, mode, ME), None, "{mode:o}");
            assert_eq!(dir_problem(0, mode, ME), None, "root's {mode:o}");
        }
        assert_eq!(dir_problem(0, 0o700, 0), None, "root's own");
    }

    #[test]
    fn a_directory_others_can_write_to_is_refused_sticky_or_not() {
        for mode in [0o777, 0o775, 0o757, 0o720, 0o702, 0o40777, 0o1777] {
            let problem = DirProblem::WritableByOthers { mode: mode & 0o7777, shared: false };
            assert_eq!(dir_problem(ME, mode, ME), Some(problem), "{mode:o}");
        }
        // Root's (like /tmp): everyone can still plant files in it, and it is not this user's to
        // make private.
        for (owner, mode) in [(0, 0o1777), (0, 0o41777), (0, 0o777), (0, 0o775)] {
            let problem = DirProblem::WritableByOthers { mode: mode & 0o7777, shared: true };
            assert_eq!(dir_problem(owner, mode, ME), Some(problem), "{owner} {mode:o}");
        }
        // Root running in /tmp: the same; but root's own 0777 directory is root's to fix.
        assert_eq!(dir_problem(0, 0o1777, 0), Some(DirProblem::WritableByOthers { mode: 0o1777, shared: true }));
        assert_eq!(dir_problem(0, 0o777, 0), Some(DirProblem::WritableByOthers { mode: 0o777, shared: false }));
    }

    #[test]
    fn a_directory_of_another_user_is_refused_whatever_its_mode() {
        for mode in [0o700, 0o755, 0o777] {
            assert_eq!(dir_problem(1001, mode, ME), Some(DirProblem::OwnedByOther { owner: 1001 }), "{mode:o}");
        }
        // Root too must not use a directory another user controls.
        assert_eq!(dir_problem(ME, 0o700, 0), Some(DirProblem::OwnedByOther { owner: ME }));
    }

    #[test]
    fn the_message_says_what_to_do() {
        let refusal = UnsafeDir {
            what: "home",
            path: PathBuf::from("/h/.claude-worker"),
            problem: DirProblem::WritableByOthers { mode: 0o777, shared: false },
            setting: "CLAUDE_WORKER_HOME",
        };
        let text = refusal.to_string();
        assert!(text.contains("mode 777") && text.contains("chmod 700 /h/.claude-worker"), "{text}");
        assert!(text.contains("CLAUDE_WORKER_HOME") && text.contains("wrote nothing"), "{text}");
        // Never advice that would close /tmp to everyone else.
        let tmp = UnsafeDir {
            what: "database directory",
            path: PathBuf::from("/tmp"),
            problem: DirProblem::WritableByOthers { mode: 0o1777, shared: true },
            setting: "CLAUDE_WORKER_DB",
        };
        let text = tmp.to_string();
        assert!(text.contains("mode 1777") && !text.contains("chmod"), "{text}");
        assert!(text.contains("set CLAUDE_WORKER_DB") && text.contains("mkdir -m 700"), "{text}");
        let refusal = UnsafeDir { problem: DirProblem::OwnedByOther { owner: 4242 }, ..refusal };
        let text = refusal.to_string();
        assert!(text.contains("uid 4242") && text.contains("chown"), "{text}");
    }

    #[test]
    fn no_file_is_opened_through_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").expect("write");
        let link = dir.path().join("task_1_summary.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let refused = open_append(&link).expect_err("a link is refused");
        assert!(is_link_refusal(&refused), "{refused}");
        assert!(refused.to_string().contains("symbolic link"), "{refused}");
        assert!(create_new(&link).is_err());
        assert!(open_existing_for_write(&link).is_err_and(|e| is_link_refusal(&e)));
        assert!(open_read(&link).is_err_and(|e| is_link_refusal(&e)));
        // Replacing removes the link, not its target.
        drop(create_replacing(&link).expect("replaced"));
        assert!(!link.is_symlink());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
    }

    #[test]
    fn files_are_created_private_and_existing_ones_made_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| std::fs::symlink_metadata(p).expect("stat").mode() & 0o777;
        let appended = dir.path().join("a.log");
        drop(open_append(&appended).expect("open"));
        assert_eq!(mode(&appended), 0o600);
        let created = dir.path().join("b");
        drop(create_new(&created).expect("create"));
        assert_eq!(mode(&created), 0o600);
        let loose = dir.path().join("loose.log");
        std::fs::write(&loose, "x").expect("write");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        drop(open_append(&loose).expect("open"));
        assert_eq!(mode(&loose), 0o600);
        let nested = dir.path().join("x/y");
        private_dir_all(&nested).expect("mkdir");
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("x")), 0o700);
        private_dir_all(&nested).expect("an existing private directory is fine");
        // One that someone else made meanwhile, open to all, is not used.
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = private_dir_all(&nested).expect_err("refused");
        assert!(refused.to_string().contains("can be written by other users"), "{refused}");
    }

    #[test]
    fn a_hard_link_to_another_file_is_not_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("bashrc");
        std::fs::write(&target, "keep me").expect("write");
        let link = dir.path().join("task_1_summary.log");
        std::fs::hard_link(&target, &link).expect("hard link");
        let refused = open_append(&link).expect_err("refused");
        assert!(refused.to_string().contains("hard links"), "{refused}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("task_1_detailed.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        assert!(open_append(&fifo).is_err());
    }
}
