//! The cost of opening a large database, as a server, worker, `claude-worker run` or the inspect
//! CLI does at every start: a database of 100,000 tasks (prompts of 1 KiB, results of 2 KiB, four
//! events each) is built once in a temporary directory, then opened several times. The goal is
//! an open under 100 ms. Run with `cargo bench --bench open`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use claude_worker::store::Store;

const TASKS: i64 = 100_000;
const PER_ORCHESTRATION: i64 = 100;
const OPENS: usize = 7;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tasks.db");
    let built = Instant::now();
    build(&path);
    let size = std::fs::metadata(&path).expect("size").len();
    println!(
        "built {TASKS} tasks in {:.1} s: {:.1} MiB",
        built.elapsed().as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    report("open as a server or worker (Store::open_with)", || {
        drop(Store::open_with(&path, None).expect("open"));
    });
    report("open as the inspect CLI to read", || {
        drop(Store::open_existing_only(&path, None, false).expect("open"));
    });
    report("open as the inspect CLI to write (cancel, retry, prune)", || {
        drop(Store::open_existing_only(&path, None, true).expect("open"));
    });
    report("PRAGMA quick_check alone", || {
        let conn = rusqlite::Connection::open(&path).expect("open");
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |row| row.get(0)).expect("check");
        assert_eq!(check, "ok");
    });
}

/// Times `open` `OPENS` times (the first warms the page cache) and prints the median.
fn report(what: &str, mut open: impl FnMut()) {
    let mut times: Vec<Duration> = (0..OPENS)
        .map(|_| {
            let start = Instant::now();
            open();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{what}: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times[OPENS / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[OPENS - 1].as_secs_f64() * 1000.0
    );
}

fn build(path: &std::path::Path) {
    drop(Store::open(path).expect("create"));
    let mut conn = rusqlite::Connection::open(path).expect("open");
    let tx = conn.transaction().expect("begin");
    let prompt = "p".repeat(1024);
    let result = "r".repeat(2048);
    {
        let mut orchestration = tx
            .prepare("INSERT INTO orchestrations (orchestration_id, status, created_at, timeout_ms) VALUES (?1, 'completed', 0, 3600000)")
            .expect("prepare");
        let mut task = tx
            .prepare(
                "INSERT INTO tasks (task_id, orchestration_id, task_identifier, execution_prompt, working_directory,
                     model, permission_mode, timeout_seconds, max_attempts, status, attempt, created_at, result)
                 VALUES (?1, ?2, ?3, ?4, '/tmp', 'sonnet', 'bypassPermissions', 3600, 3, 'completed', 1, 0, ?5)",
            )
            .expect("prepare");
        let mut event = tx
            .prepare("INSERT INTO task_events (task_id, at, kind, attempt, detail) VALUES (?1, 0, ?2, 1, 'pid 12345')")
            .expect("prepare");
        for id in 1..=TASKS {
            let orchestration_id = (id - 1) / PER_ORCHESTRATION + 1;
            if (id - 1) % PER_ORCHESTRATION == 0 {
                orchestration.execute([orchestration_id]).expect("orchestration");
            }
            task.execute(rusqlite::params![id, orchestration_id, format!("task-{id}"), prompt, result]).expect("task");
            for kind in ["created", "claimed", "started", "completed"] {
                event.execute(rusqlite::params![id, kind]).expect("event");
            }
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
}
