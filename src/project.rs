//! Projects: what keeps the tasks of one editor window from binding to those of another on the
//! shared database. A directory's project is the top of the git work tree that holds it (the
//! nearest directory, going up, with a `.git` directory or file: a worktree or a submodule has a
//! `.git` file), or the directory itself outside git. Found by looking at the file system, never
//! by running git (only `runner` spawns processes).
//!
//! A new task belongs to the caller's project when its working directory lies inside it (a
//! workflow's `./backend` and `./frontend` in a directory outside git, or a submodule of the
//! caller's repository, stay with the caller's work), else to its working directory's project.
//!
//! [`find_top`] and [`task_project`] are the decisions, pure over a question "has this
//! directory a `.git`?"; [`Project::of_directory`] and [`Project::of_task`] ask the real file
//! system.

use std::fmt;
use std::path::{Path, PathBuf};

/// A project: the absolute path of its top directory, as stored with each task.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Project(std::sync::Arc<str>);

impl Project {
    /// The project of a directory on this machine: the top of its git work tree, or itself.
    /// `dir` should be absolute and canonical (a task's working directory is).
    pub fn of_directory(dir: &Path) -> Project {
        Project::from_path(&find_top(dir, has_git_entry))
    }

    /// The project of a new task that runs in `working_directory`, queued by a caller in `caller`.
    pub fn of_task(working_directory: &Path, caller: &Project) -> Project {
        task_project(working_directory, caller, has_git_entry)
    }

    /// A project whose top is already known (read back from the database).
    pub fn from_stored(top: String) -> Project {
        Project(top.into())
    }

    fn from_path(path: &Path) -> Project {
        Project(path.to_string_lossy().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The top of the git work tree holding `dir`: the nearest of `dir` and its ancestors for
/// which `has_git` says yes; `dir` itself when none does.
pub fn find_top(dir: &Path, has_git: impl Fn(&Path) -> bool) -> PathBuf {
    dir.ancestors().find(|candidate| has_git(candidate)).unwrap_or(dir).to_path_buf()
}

/// The project of a task in `working_directory` queued from `caller`'s project: the caller's
/// when the directory lies inside it, else the top of its own git work tree (or itself).
pub fn task_project(working_directory: &Path, caller: &Project, has_git: impl Fn(&Path) -> bool) -> Project {
    if working_directory.starts_with(caller.as_str()) {
        return caller.clone();
    }
    Project::from_path(&find_top(working_directory, has_git))
}

/// Whether `dir` holds a `.git` directory (a repository) or file (a worktree, a submodule).
/// Symbolic links are followed, as git does; anything else named `.git` does not count.
fn has_git_entry(dir: &Path) -> bool {
    std::fs::metadata(dir.join(".git")).is_ok_and(|meta| meta.is_dir() || meta.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(dir: &str, with_git: &[&str]) -> PathBuf {
        find_top(Path::new(dir), |candidate| with_git.iter().any(|g| Path::new(g) == candidate))
    }

    #[test]
    fn a_directory_inside_a_repository_belongs_to_its_top() {
        assert_eq!(top("/home/me/src/app/crates/core", &["/home/me/src/app"]), Path::new("/home/me/src/app"));
        assert_eq!(top("/home/me/src/app", &["/home/me/src/app"]), Path::new("/home/me/src/app"));
    }

    #[test]
    fn the_nearest_git_wins_so_a_submodule_or_worktree_is_its_own_project() {
        let git = ["/src/app", "/src/app/vendor/lib"];
        assert_eq!(top("/src/app/vendor/lib/src", &git), Path::new("/src/app/vendor/lib"));
        assert_eq!(top("/src/app/vendor", &git), Path::new("/src/app"));
    }

    #[test]
    fn outside_git_a_directory_is_its_own_project() {
        assert_eq!(top("/tmp/scratch", &[]), Path::new("/tmp/scratch"));
        assert_eq!(top("/", &[]), Path::new("/"));
        // A repository beside it or below it does not count.
        assert_eq!(top("/tmp/scratch", &["/tmp/other", "/tmp/scratch/sub"]), Path::new("/tmp/scratch"));
    }

    #[test]
    fn a_task_inside_the_caller_s_project_belongs_to_it() {
        let caller = Project::from_stored("/work/app".to_owned());
        let git = |with_git: &'static [&'static str]| move |c: &Path| with_git.iter().any(|g| Path::new(g) == c);
        // Outside git: a subdirectory is not a project of its own.
        assert_eq!(task_project(Path::new("/work/app/backend"), &caller, git(&[])), caller);
        assert_eq!(task_project(Path::new("/work/app"), &caller, git(&[])), caller);
        // A submodule of the caller's repository stays with the caller's work.
        let with_submodule: &'static [&'static str] = &["/work/app", "/work/app/vendor/lib"];
        assert_eq!(task_project(Path::new("/work/app/vendor/lib"), &caller, git(with_submodule)), caller);
        // Elsewhere: its own project. A name that merely starts the same is elsewhere.
        assert_eq!(
            task_project(Path::new("/work/other/src"), &caller, git(&["/work/other"])),
            Project::from_stored("/work/other".to_owned())
        );
        assert_eq!(
            task_project(Path::new("/work/app2"), &caller, git(&[])),
            Project::from_stored("/work/app2".to_owned())
        );
    }

    #[test]
    fn real_git_directories_and_files_are_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        let repo = root.join("repo");
        let deep = repo.join("a/b");
        std::fs::create_dir_all(&deep).expect("mkdir");
        std::fs::create_dir(repo.join(".git")).expect("mkdir .git");
        assert_eq!(Project::of_directory(&deep), Project::from_path(&repo));
        // A worktree: `.git` is a file naming the real git directory.
        let worktree = root.join("worktree");
        std::fs::create_dir_all(worktree.join("src")).expect("mkdir");
        std::fs::write(worktree.join(".git"), "gitdir: ../repo/.git/worktrees/w\n").expect("write .git");
        assert_eq!(Project::of_directory(&worktree.join("src")), Project::from_path(&worktree));
        // Outside both (the temp dir is not in a repository).
        let plain = root.join("plain");
        std::fs::create_dir(&plain).expect("mkdir");
        assert_eq!(Project::of_directory(&plain), Project::from_path(&plain));
    }
}
