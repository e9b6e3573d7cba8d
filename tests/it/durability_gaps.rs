//! The durability gaps a review found, each closed and proven here with real processes: a live
//! owner's task taken back while the owner thaws, writes that wait on a locked database while a
//! run must be stopped, processes that leave the CLI's session, a change the database watch
//! missed, owner-lock races, and the page cap on every connection that writes.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::harness::{Env, SERVER, alive, eventually};

fn signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).expect("signal");
}

/// The kinds of one task's events, oldest first.
fn event_kinds(env: &Env, identifier: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(env.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT e.kind FROM task_events e JOIN tasks t USING (task_id)
             WHERE t.task_identifier = ?1 ORDER BY e.event_id",
        )
        .expect("prepare");
    stmt.query_map([identifier], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
}

#[tokio::test]
async fn an_owner_that_thaws_while_its_task_is_taken_back_cannot_count_the_attempt() {
    // The recovering server pauses after stopping the old CLI, before it hands the task on: the
    // moment a laptop's frozen owner may wake up in.
    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "2");
    let go = env.state.join("go-on");
    let env = env.set("CLAUDE_WORKER_PAUSE_AT", &format!("reclaim_after_stop:{}", go.display()));
    let frozen = env.server().await;
    // One attempt only: an attempt wrongly counted fails the task.
    frozen.create("job", "job @sleep=30 @result=done", json!({ "max_attempts": 1 })).await;
    let start = eventually(60.0, "the first attempt to start", || env.starts().into_iter().next()).await;
    eventually(10.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    signal(frozen.pid, Signal::SIGSTOP);

    let other = env.server().await;
    let first_pid = i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid");
    eventually(60.0, "the other server to stop the frozen owner's CLI", || (!alive(first_pid)).then_some(())).await;

    // The owner wakes up and finds its CLI killed by a signal.
    signal(frozen.pid, Signal::SIGCONT);
    let global = env.home.join("claude-worker.log");
    eventually(60.0, "the thawed owner to write its outcome or be refused", || {
        let log = std::fs::read_to_string(&global).unwrap_or_default();
        let kinds = event_kinds(&env, "job");
        (log.contains("another owner holds it now")
            || log.contains("lost the claim")
            || kinds.iter().any(|k| k == "failed" || k == "retry_scheduled"))
        .then_some(())
    })
    .await;
    std::fs::write(&go, "").expect("let the recovery go on");

    let done = other.wait_task("job", 60.0).await;
    assert_eq!(done["status"], "completed", "the stale owner's outcome was refused: {done}");
    let kinds = event_kinds(&env, "job");
    assert!(!kinds.iter().any(|k| k == "failed" || k == "retry_scheduled"), "no attempt counted: {kinds:?}");
    frozen.stop().await;
    other.stop().await;
}

/// Seconds since the epoch, as the fake CLI records its times.
fn epoch_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
}

#[tokio::test]
async fn a_locked_database_does_not_freeze_a_running_attempt() {
    let env = Env::new();
    let server = env.server().await;
    server.create("slow", "slow @sleep=60", json!({ "timeout_seconds": 3 })).await;
    eventually(20.0, "the attempt to start and its pid to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE pid IS NOT NULL") == 1).then_some(())
    })
    .await;
    // Another process holds the write lock for 15 s while the CLI prints its steps (progress to
    // record) and the heartbeat comes due.
    let db = env.db_path();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let taken = epoch_seconds();
        locked_tx.send(taken).expect("send");
        std::thread::sleep(Duration::from_secs(15));
        conn.execute_batch("ROLLBACK").expect("release the lock");
        epoch_seconds()
    });
    let locked_at = locked_rx.recv().expect("the lock is taken");
    let released_at = tokio::task::spawn_blocking(move || holder.join().expect("holder")).await.expect("join");
    let end = env.invocations().into_iter().find(|v| v["event"] == "end").expect("the CLI was stopped meanwhile");
    let ended_at = end["at"].as_f64().expect("end time");
    assert!(
        ended_at < released_at - 5.0,
        "the CLI was stopped on its timeout while the database was locked (locked at {locked_at:.1}, ended at \
         {ended_at:.1}, released at {released_at:.1})"
    );
    let done = server.wait_task("slow", 90.0).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "timeout", "the outcome is written once the lock is gone: {done}");
    server.stop().await;
}

/// The pids of the processes the fake CLIs started in sessions of their own.
fn escapees(env: &Env) -> Vec<i32> {
    std::fs::read_dir(&env.state)
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("escapee-"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn processes_started_in_a_new_session_do_not_outlive_their_attempt() {
    let env = Env::new();
    let server = env.server().await;
    // One completes, one times out, one is cancelled: each leaves a `setsid` process behind.
    server.create("done", "done @escapee @result=ok", json!({})).await;
    server.create("slow", "slow @escapee @sleep=60", json!({ "timeout_seconds": 2 })).await;
    server.create("stopped", "stopped @escapee @sleep=60", json!({})).await;
    eventually(60.0, "the three escapees to start", || (escapees(&env).len() == 3).then_some(())).await;
    server.ok("cancel", json!({ "task": "stopped" })).await;
    for (task, status) in [("done", "completed"), ("slow", "failed"), ("stopped", "cancelled")] {
        let end = server.wait_task(task, 60.0).await;
        assert_eq!(end["status"], status, "{end}");
    }
    let left = escapees(&env);
    // Should the test fail, what it started does not outlive it either.
    let _cleanup = KillOnDrop(left.clone());
    eventually(60.0, "every escapee to be stopped", || left.iter().all(|&pid| !alive(pid)).then_some(())).await;
    server.stop().await;
}

/// Kills the processes it names when dropped.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

#[tokio::test]
async fn a_burst_of_detached_workers_leaves_one_running() {
    let env = Env::new();
    // Queued from the shell: no executor is alive, so `run` starts a background worker.
    let queued = crate::harness::finished(env.command(SERVER).args(["run", "burst @sleep=3", "-q"])).await;
    assert!(queued.status.success(), "{}", crate::harness::text(&queued.stderr));
    // More start at the same moment, as a burst of `claude-worker run` would start them.
    let mut extra: Vec<_> = (0..4)
        .map(|_| {
            env.command(SERVER)
                .args(["work", "--until-idle", "--detached"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(env.stderr_log())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    for worker in &mut extra {
        tokio::time::timeout(Duration::from_secs(60), worker.wait()).await.expect("the worker exits").expect("wait");
    }
    eventually(60.0, "the task to complete", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == 1).then_some(())
    })
    .await;
    crate::harness::no_executor_left(&env).await;
    let log = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    let working = log.lines().filter(|l| l.contains("claude-worker working")).count();
    assert_eq!(working, 1, "one worker opened the database and ran the queue:\n{log}");
    assert_eq!(env.starts().len(), 1);
}

#[tokio::test]
async fn the_inspect_cli_keeps_to_the_page_cap_when_it_writes() {
    let env = Env::new();
    let server = env.server().await;
    // Tasks that wait an hour: cancelling them writes an event each, more than fits in the pages
    // the database has.
    let tasks: Vec<_> = (0..80)
        .map(|i| json!({ "identifier": format!("later{i}"), "execution_prompt": "later", "initial_delay": 3600 }))
        .collect();
    let created = server.ok("create_orchestration", json!({ "tasks": tasks })).await;
    let orchestration = created["orchestration_id"].as_i64().expect("id").to_string();
    server.stop().await;
    let db = env.db_path();
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("CREATE TABLE filler (x BLOB)").expect("filler");
    let pages = |conn: &rusqlite::Connection, pragma: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0)).expect("pragma")
    };
    let cap = pages(&conn, "page_count") + 20;
    while pages(&conn, "page_count") < cap || pages(&conn, "freelist_count") > 0 {
        conn.execute("INSERT INTO filler VALUES (zeroblob(3000))", []).expect("fill");
    }
    drop(conn);

    let output = crate::harness::finished(
        env.command(crate::harness::INSPECT).env("CLAUDE_WORKER_MAX_DB_PAGES", cap.to_string()).args([
            "cancel",
            "--orchestration",
            &orchestration,
        ]),
    )
    .await;
    let stderr = crate::harness::text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("is full"), "refused as full: {stderr}");
    let conn = rusqlite::Connection::open(&db).expect("open");
    assert!(pages(&conn, "page_count") <= cap, "the database did not grow past the cap");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'cancelled'"), 0, "nothing half-written");
}
