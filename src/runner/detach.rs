//! The detached worker a server leaves behind when it exits with work queued and no other
//! executor alive (and that `claude-worker run` starts when none is running):
//! `claude-worker work --until-idle --detached`, which runs the queue to the end and exits.
//! It starts in a process group of its own, so that the terminal's Ctrl-C or the editor's
//! group kill that ends its parent cannot reach it, even in its first moments.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

/// Starts the detached worker: stdio closed (it logs to the global log), not waited for.
/// Returns its pid.
pub fn spawn_detached_worker() -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["work", "--until-idle", "--detached"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}
