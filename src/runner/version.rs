//! `claude --version`, for `claude-worker-inspect doctor`: the one other process the runner
//! starts, with a timeout, its stdin closed and its output bounded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Why the version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("not found")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("cannot start it: {0}")]
    Spawn(std::io::Error),
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("it exited with {status}: {stderr}")]
    Failed { status: String, stderr: String },
}

/// Runs `<bin> --version` and returns the first line it printed.
pub async fn claude_version(bin: &Path, timeout: Duration) -> Result<String, VersionError> {
    let mut command = Command::new(bin);
    command
        .arg("--version")
        .env_remove("CLAUDECODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => VersionError::NotFound,
        std::io::ErrorKind::PermissionDenied => VersionError::PermissionDenied,
        _ => VersionError::Spawn(e),
    })?;
    // On timeout the child is dropped, which kills it.
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| VersionError::Timeout(timeout))?
        .map_err(VersionError::Spawn)?;
    let first_line = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").chars().take(200).collect::<String>()
    };
    if !output.status.success() {
        return Err(VersionError::Failed { status: output.status.to_string(), stderr: first_line(&output.stderr) });
    }
    Ok(first_line(&output.stdout))
}
