//! The detached worker a server leaves behind when it exits with work queued and no other
//! executor alive: `claude-worker work --until-idle --detached`, which leaves the editor's session
//! (`setsid`) as it starts, runs the queue to the end and exits.

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
        .spawn()?;
    Ok(child.id())
}
