//! Whether the database's path still names the files this process has open. SQLite keeps
//! writing to the file it opened, whatever happens to its name: after `rm tasks.db*` a server
//! would go on acknowledging work into a file no other process can see (and that disappears
//! when it exits), and after a backup is moved over the path two processes would run two queues.
//!
//! At open, the store records the device and inode of the database file and of its `-wal` and
//! `-shm` files; before and after each write transaction commits, and before each read, it
//! compares them with what the paths name now ([`identity`], a pure decision) and refuses to go
//! on in a file the path no longer names. A `stat` of three paths costs a few microseconds (see
//! ARCHITECTURE.md), against the milliseconds of the commit's fsync.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// A file's identity: the device and inode it lives at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

/// What a path names now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtPath {
    File(FileId),
    /// Nothing: the path, or a directory on the way to it, is gone.
    Nothing,
    /// It cannot be told (the directory became unreadable, say): the file is taken to be the same.
    Unknown,
}

/// How a path relates to the file opened through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The path still names the opened file.
    Same,
    /// The path names nothing: the file was deleted (or moved away).
    Deleted,
    /// The path names another file (a backup moved over it, a new database created in its place).
    Replaced,
}

/// The decision: how the path relates to the file opened through it.
pub(crate) fn identity(opened: FileId, at_path: AtPath) -> Identity {
    match at_path {
        AtPath::File(now) if now == opened => Identity::Same,
        AtPath::File(_) => Identity::Replaced,
        AtPath::Nothing => Identity::Deleted,
        AtPath::Unknown => Identity::Same,
    }
}

/// The first file of `files` whose path no longer names it, and how.
pub(crate) fn first_change(files: impl IntoIterator<Item = (FileId, AtPath)>) -> Option<(usize, Identity)> {
    files
        .into_iter()
        .map(|(opened, at_path)| identity(opened, at_path))
        .enumerate()
        .find(|(_, identity)| *identity != Identity::Same)
}

/// What `path` names now (following symbolic links, as SQLite's open does).
pub(crate) fn look(path: &Path) -> AtPath {
    match std::fs::metadata(path) {
        Ok(meta) => AtPath::File(FileId { dev: meta.dev(), ino: meta.ino() }),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            AtPath::Nothing
        }
        Err(_) => AtPath::Unknown,
    }
}

/// The database file and its companions as this connection opened them.
#[derive(Debug)]
pub(crate) struct OpenedFiles {
    /// The database first, then its `-wal` and `-shm` when they existed at open.
    files: Vec<(PathBuf, FileId)>,
}

impl OpenedFiles {
    /// Records the files of a connection just opened: `db` is the path it was opened by,
    /// `sqlite_path` the database's name as SQLite resolved it (the WAL and shared-memory files
    /// are named after that one). `None` when the database file itself cannot be looked at.
    pub(crate) fn record(db: &Path, sqlite_path: &Path) -> Option<OpenedFiles> {
        let AtPath::File(db_id) = look(db) else { return None };
        let mut files = vec![(db.to_owned(), db_id)];
        for suffix in ["-wal", "-shm"] {
            let mut name = sqlite_path.as_os_str().to_owned();
            name.push(suffix);
            let path = PathBuf::from(name);
            if let AtPath::File(id) = look(&path) {
                files.push((path, id));
            }
        }
        Some(OpenedFiles { files })
    }

    /// The database file's identity as opened.
    pub(crate) fn db(&self) -> FileId {
        self.files[0].1
    }

    /// The first file whose path no longer names it, and how; `None` while all are the same.
    pub(crate) fn check(&self) -> Option<(Identity, &Path)> {
        let (index, identity) = first_change(self.files.iter().map(|(path, id)| (*id, look(path))))?;
        Some((identity, &self.files[index].0))
    }

    /// Whether the database path still names the database file opened.
    pub(crate) fn db_same(&self) -> bool {
        identity(self.files[0].1, look(&self.files[0].0)) == Identity::Same
    }

    /// Whether the `-wal` and `-shm` files at their paths are still the ones opened: only then
    /// may closing the connection checkpoint and delete them (SQLite deletes them by name).
    pub(crate) fn companions_same(&self) -> bool {
        self.files[1..].iter().all(|(path, id)| identity(*id, look(path)) == Identity::Same)
    }

    /// Deletes the `-wal` and `-shm` files that are still ours, once the database file itself is
    /// gone from its path and the connection closed: they belong to a file nobody can open any
    /// more, and a database created or restored at the path would otherwise be read through our
    /// WAL (SQLite does not check that a WAL belongs to its database).
    pub(crate) fn remove_own_companions(&self) {
        for (path, id) in &self.files[1..] {
            if identity(*id, look(path)) == Identity::Same {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENED: FileId = FileId { dev: 2049, ino: 131_074 };

    #[test]
    fn the_same_file_at_the_path_is_the_same() {
        assert_eq!(identity(OPENED, AtPath::File(OPENED)), Identity::Same);
    }

    #[test]
    fn nothing_at_the_path_is_a_deleted_file() {
        assert_eq!(identity(OPENED, AtPath::Nothing), Identity::Deleted);
    }

    #[test]
    fn another_inode_or_device_at_the_path_is_a_replaced_file() {
        assert_eq!(identity(OPENED, AtPath::File(FileId { dev: 2049, ino: 131_075 })), Identity::Replaced);
        // The same inode number on another file system is another file.
        assert_eq!(identity(OPENED, AtPath::File(FileId { dev: 2050, ino: 131_074 })), Identity::Replaced);
    }

    #[test]
    fn a_path_that_cannot_be_looked_at_is_not_a_reason_to_stop() {
        assert_eq!(identity(OPENED, AtPath::Unknown), Identity::Same);
    }

    #[test]
    fn the_first_changed_file_is_reported() {
        let other = FileId { dev: 1, ino: 1 };
        assert_eq!(first_change([(OPENED, AtPath::File(OPENED)), (other, AtPath::File(other))]), None);
        assert_eq!(
            first_change([(OPENED, AtPath::File(OPENED)), (other, AtPath::Nothing), (other, AtPath::File(OPENED))]),
            Some((1, Identity::Deleted))
        );
        assert_eq!(
            first_change([(OPENED, AtPath::File(other)), (other, AtPath::Nothing)]),
            Some((0, Identity::Replaced))
        );
    }

    #[test]
    fn real_files_are_told_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("tasks.db");
        std::fs::write(&db, b"one").expect("write");
        std::fs::write(dir.path().join("tasks.db-wal"), b"wal").expect("write");
        let opened = OpenedFiles::record(&db, &db).expect("recorded");
        assert_eq!(opened.files.len(), 2, "the missing -shm is not watched");
        assert_eq!(opened.check(), None);
        // A file moved over the path.
        let backup = dir.path().join("backup.db");
        std::fs::write(&backup, b"two").expect("write");
        std::fs::rename(&backup, &db).expect("mv");
        assert_eq!(opened.check(), Some((Identity::Replaced, db.as_path())));
        assert!(opened.companions_same());
        // Everything deleted.
        std::fs::remove_file(&db).expect("rm");
        std::fs::remove_file(dir.path().join("tasks.db-wal")).expect("rm");
        assert_eq!(opened.check(), Some((Identity::Deleted, db.as_path())));
        assert!(!opened.companions_same());
    }
}
