//! The detached worker a server leaves behind when it exits with work queued and no other
//! executor alive (and that the terminal commands and the inspect CLI start when they queue or
//! reopen work while none is running): `claude-worker work --until-idle --detached`, which runs
//! the queue to the end and exits. It starts in a process group of its own, so that the
//! terminal's Ctrl-C or the editor's group kill that ends its parent cannot reach it, even in
//! its first moments.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Starts the detached worker on the database at `db_path`: stdio closed (it logs to the global
/// log), not waited for. Returns its pid.
pub fn spawn_detached_worker(db_path: &Path) -> std::io::Result<u32> {
    let child = Command::new(worker_program()?)
        .args(["work", "--until-idle", "--detached"])
        // The caller may have been pointed at this database by a flag (`--db`), not the
        // environment: the worker must serve the same one.
        .env("CLAUDE_WORKER_DB", db_path)
        // Started from inside a task (`claude-worker run` in a task's shell), it must not pass
        // for a part of that task's attempt: it would run no executor, and the attempt's end
        // would stop it with the rest of what the attempt started.
        .env_remove(super::RUN_TAG_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// Starts the detached worker unless an executor is alive on the database; the pid of the one
/// started, if one was.
pub fn ensure_worker(db_path: &Path) -> std::io::Result<Option<u32>> {
    if crate::owners::any_alive(db_path) {
        return Ok(None);
    }
    spawn_detached_worker(db_path).map(Some)
}

/// The `claude-worker` program: this one, else the one installed beside this program (as
/// `claude-worker-inspect` is), else the one on `PATH`.
fn worker_program() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|name| name == "claude-worker") {
        return Ok(exe);
    }
    super::find_executable(&exe.with_file_name("claude-worker"))
        .or_else(|| super::find_executable(Path::new("claude-worker")))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no claude-worker program beside {} or on PATH", exe.display()),
            )
        })
}
