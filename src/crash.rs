//! Crash points for the durability tests: `CLAUDE_WORKER_CRASH_AT=<point>` makes a debug build
//! abort the whole process at that point, as a power cut or `kill -9` would. Release builds
//! compile the check away and never read the variable.
//!
//! The points: `after_claim` (claims committed, no process started), `after_spawn` (the CLI runs,
//! its pid not yet recorded), `before_completion_commit` (a completion written but not committed)
//! and `mid_promotion` (a dependent promoted, the transaction not committed).
//!
//! Pause points let a test act in the middle of a sequence: `CLAUDE_WORKER_PAUSE_AT=<point>:<file>`
//! makes a debug build wait at that point until `<file>` exists. The one point:
//! `reclaim_after_stop` (a live owner's task taken back: the old processes stopped, the task not
//! yet released for the next attempt).

/// Aborts the process when the test asked for a crash at `point` (debug builds only).
#[inline]
pub fn point(point: &str) {
    #[cfg(debug_assertions)]
    {
        static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if AT.get_or_init(|| std::env::var("CLAUDE_WORKER_CRASH_AT").ok()).as_deref() == Some(point) {
            tracing::error!("crash point {point}: aborting as asked by CLAUDE_WORKER_CRASH_AT");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Waits at `point` until the file the test named exists (debug builds only).
pub async fn pause(point: &str) {
    #[cfg(debug_assertions)]
    {
        static AT: std::sync::OnceLock<Option<(String, std::path::PathBuf)>> = std::sync::OnceLock::new();
        let at = AT.get_or_init(|| {
            let value = std::env::var("CLAUDE_WORKER_PAUSE_AT").ok()?;
            let (name, file) = value.split_once(':')?;
            Some((name.to_owned(), file.into()))
        });
        if let Some((name, file)) = at
            && name == point
        {
            tracing::warn!("pause point {point}: waiting for {} as asked by CLAUDE_WORKER_PAUSE_AT", file.display());
            while !file.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
