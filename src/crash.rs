//! Crash points for the durability tests: `CLAUDE_WORKER_CRASH_AT=<point>` makes a debug build
//! abort the whole process at that point, as a power cut or `kill -9` would. Release builds
//! compile the check away and never read the variable.
//!
//! The points: `after_claim` (claims committed, no process started), `after_spawn` (the CLI runs,
//! its pid not yet recorded), `before_completion_commit` (a completion written but not committed)
//! and `mid_promotion` (a dependent promoted, the transaction not committed).

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
