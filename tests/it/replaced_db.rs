//! A database deleted (`rm tasks.db*`) or replaced (a backup moved over it) under running
//! processes: the server refuses every call with a message that says what happened and what to
//! do, acknowledges nothing into the dead file, stops its running tasks, says so once on stderr,
//! and leaves the database now at the path (and its -wal) alone; the global cap holds across
//! the old file and the new one; a worker exits; the inspect CLI stops with the error.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::harness::{Env, INSPECT, SERVER, alive, eventually};

const DELETED: &str = "was deleted while this process had it open";
const REPLACED: &str = "was replaced by another file while this process had it open";

/// `rm tasks.db*`: the database and its -wal and -shm files.
fn remove_database(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        std::fs::remove_file(PathBuf::from(name)).expect("rm");
    }
}

/// A copy of the database as it is now, as a backup tool makes one (`VACUUM INTO`).
fn backup(db: &Path, to: &Path) {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db");
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()]).expect("VACUUM INTO");
}

fn pid_of(start: &Value) -> i32 {
    i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid")
}

fn occurrences(text: &str, what: &str) -> usize {
    text.matches(what).count()
}

#[tokio::test]
async fn a_deleted_database_refuses_every_call_stops_its_tasks_and_spares_the_new_one() {
    let env = Env::new();
    let first = env.server().await;
    first.create("long", "long @sleep=30", json!({})).await;
    let start = eventually(20.0, "the attempt to start", || env.starts().into_iter().next()).await;
    remove_database(&env.db_path());

    let message = first.err("create_task", json!({ "task_identifier": "after", "execution_prompt": "hello" })).await;
    assert!(message.contains(DELETED), "{message}");
    assert!(message.contains("Start claude-worker again") && message.contains("/mcp"), "says what to do: {message}");
    // Every later call is refused the same way, reads too: the dead file's tasks are not shown as if alive.
    let listed = first.err("list_tasks", json!({})).await;
    assert!(listed.contains(DELETED), "{listed}");
    // Its running task was stopped: its outcome can be recorded nowhere.
    eventually(10.0, "the running CLI to be stopped", || (!alive(pid_of(&start))).then_some(())).await;
    assert!(alive(first.pid), "the server stays, answering with the error, until its client goes");

    // A new server on the path has a new, empty database: what the deleted file held is gone.
    let second = env.server().await;
    let tasks = second.ok("list_tasks", json!({})).await;
    assert_eq!(tasks["tasks"], json!([]), "{tasks}");
    second.create("new", "hello", json!({})).await;
    second.wait_task("new", 30.0).await;
    // The first server's exit leaves the new database, and its WAL, alone.
    let first_pid = first.pid;
    first.stop().await;
    eventually(10.0, "the first server to exit", || (!alive(first_pid)).then_some(())).await;
    let status = second.ok("get_status", json!({ "task": "new" })).await;
    assert_eq!(status["status"], "completed", "{status}");
    second.create("later", "hello", json!({})).await;
    second.wait_task("later", 30.0).await;
    second.stop().await;
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 2);
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier = 'after'"), 0, "nothing acknowledged");

    let stderr = env.stderr_report().unwrap_or_default();
    assert_eq!(occurrences(&stderr, DELETED), 1, "said once on stderr, not per call: {stderr}");
    let log = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    assert_eq!(occurrences(&log, DELETED), 1, "said once in the global log: {log}");
    // The stopped task's log is all that is left of its attempt, and says so.
    let summary = std::fs::read_to_string(env.home.join("tasks/task_1_summary.log")).expect("summary log");
    assert!(summary.contains("not recorded: the database was deleted or replaced"), "{summary}");
}

#[tokio::test]
async fn a_backup_moved_over_the_database_is_refused_and_the_global_cap_holds() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "2");
    let first = env.server().await;
    // The backup is of the empty queue; the first server then runs two tasks, the cap's worth.
    let copy = env.home.join("backup.db");
    backup(&env.db_path(), &copy);
    for name in ["one", "two"] {
        first.create(name, &format!("{name} @sleep=30"), json!({})).await;
    }
    let starts = eventually(20.0, "both attempts to start", || Some(env.starts()).filter(|s| s.len() == 2)).await;
    std::fs::rename(&copy, env.db_path()).expect("mv backup.db tasks.db");

    let message = first.err("create_task", json!({ "task_identifier": "three", "execution_prompt": "three" })).await;
    assert!(message.contains(REPLACED), "{message}");
    assert!(message.contains("stop every claude-worker process first"), "says how to restore a backup: {message}");
    // No second queue: the first server stops its CLIs, which ran against the file nobody sees.
    for start in &starts {
        eventually(10.0, "the first server's CLIs to be stopped", || (!alive(pid_of(start))).then_some(())).await;
    }
    assert!(alive(first.pid), "the server stays, answering with the error, until its client goes");

    // A server on the file now at the path runs the cap's worth, and is then alone in doing so.
    let second = env.server().await;
    for name in ["three", "four"] {
        second.create(name, &format!("{name} @sleep=30"), json!({})).await;
    }
    let all = eventually(20.0, "the second server to run both", || Some(env.starts()).filter(|s| s.len() == 4)).await;
    assert!(all.iter().all(|s| s["concurrent"].as_i64() <= Some(2)), "never more than 2 CLIs at once: {all:?}");
    let running = second.ok("list_tasks", json!({ "status": "running" })).await;
    assert_eq!(running["tasks"].as_array().map(Vec::len), Some(2), "{running}");
    // What the first server acknowledged went with the file it was in; nothing of it shows here.
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier IN ('one', 'two', 'three')"), 1);
    let first_pid = first.pid;
    first.stop().await;
    eventually(10.0, "the first server to exit", || (!alive(first_pid)).then_some(())).await;
    assert_eq!(second.ok("list_tasks", json!({})).await["tasks"].as_array().map(Vec::len), Some(2));
    second.stop().await;

    let stderr = env.stderr_report().unwrap_or_default();
    assert_eq!(occurrences(&stderr, REPLACED), 1, "said once on stderr: {stderr}");
}

#[tokio::test]
async fn a_worker_exits_and_the_inspect_cli_stops_when_the_database_is_deleted() {
    let env = Env::new();
    let mut worker = env
        .command(SERVER)
        .arg("work")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(env.stderr_log())
        .spawn()
        .expect("spawn the worker");
    eventually(20.0, "the database to be created", || env.db_path().exists().then_some(())).await;
    let queued = env
        .command(SERVER)
        .args(["run", "long @sleep=30", "--identifier", "long"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run");
    assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));
    let start = eventually(20.0, "the worker to start the task", || env.starts().into_iter().next()).await;
    let mut watch = env
        .command(INSPECT)
        .args(["watch", "long"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn inspect watch");
    // It has the database open once it drew the task.
    let mut drawn = tokio::io::BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first_line = tokio::time::timeout(Duration::from_secs(20), drawn.next_line()).await.expect("drawn in time");
    assert!(first_line.expect("read").is_some_and(|l| !l.is_empty()), "inspect watch drew the task");

    remove_database(&env.db_path());

    let exit =
        tokio::time::timeout(Duration::from_secs(20), worker.wait()).await.expect("the worker exits").expect("wait");
    assert_eq!(exit.code(), Some(1), "the worker fails");
    assert!(!alive(pid_of(&start)), "its running task was stopped first");
    let said = env.stderr_report().unwrap_or_default();
    assert_eq!(occurrences(&said, DELETED), 1, "said once: {said}");

    let watched = tokio::time::timeout(Duration::from_secs(20), watch.wait_with_output())
        .await
        .expect("inspect watch stops")
        .expect("wait");
    let said = String::from_utf8_lossy(&watched.stderr);
    assert_eq!(watched.status.code(), Some(1), "{said}");
    assert!(said.contains(DELETED), "{said}");
    // A one-shot command on the path now finds no database, as it should.
    let listed = env.inspect(&["list"]).await;
    assert!(!listed.status.success());
}
