//! The limits a user sets: the orchestration size and deadline, the detailed log cap, and a
//! database from a newer claude-worker.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Env, SERVER};

#[tokio::test]
async fn an_orchestration_past_its_timeout_is_cancelled() {
    let env = Env::new().set("ORCHESTRATION_TIMEOUT", "1");
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "tasks": [
                { "identifier": "long", "execution_prompt": "long @sleep=30" },
                { "identifier": "after", "execution_prompt": "after", "depends_on": ["long"] },
            ] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 20.0).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["cancelled_tasks"], 2, "{done}");
    for task in done["tasks"].as_array().expect("tasks") {
        assert_eq!(task["error"]["kind"], "orchestration_timeout", "{task}");
    }
    client.stop().await;
}

#[tokio::test]
async fn an_orchestration_cannot_outgrow_its_limit() {
    let env = Env::new().set("MAX_TASKS_PER_ORCHESTRATION", "2");
    let client = env.server().await;
    client.create("one", "one", json!({ "orchestration": "small" })).await;
    client.create("two", "two", json!({ "orchestration": "small" })).await;
    let message = client
        .err("create_task", json!({ "task_identifier": "three", "execution_prompt": "x", "orchestration": "small" }))
        .await;
    assert!(message.contains("MAX_TASKS_PER_ORCHESTRATION"), "{message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 2);
    client.stop().await;
}

#[tokio::test]
async fn the_detailed_log_is_capped_keeping_head_and_tail() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "1");
    let client = env.server().await;
    client.create("chatty", "chatty @lots=8", json!({})).await;
    let status = client.wait_task("chatty", 60.0).await;
    assert_eq!(status["status"], "completed", "8 MiB of output does not disturb the run");
    let log = std::fs::read_to_string(status["detailed_log"].as_str().expect("path")).expect("log");
    assert!(log.len() < 1024 * 1024 + 64 * 1024, "the log is capped: {} bytes", log.len());
    assert!(log.contains("\"subtype\":\"init\""), "the head is kept");
    assert!(log.contains("\"type\":\"result\""), "the tail is kept");
    assert!(log.contains("bytes omitted"));
    client.stop().await;
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_untouched() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).expect("home");
    {
        let conn = rusqlite::Connection::open(env.db_path()).expect("create");
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 42;").expect("future schema");
    }
    let before = std::fs::read(env.db_path()).expect("read");
    let output = env.command(SERVER).stdin(std::process::Stdio::null()).output().await.expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("schema version 42") && stderr.contains("upgrade claude-worker"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing but JSON-RPC on stdout, and here nothing at all");
    assert_eq!(std::fs::read(env.db_path()).expect("read"), before);
}

#[tokio::test]
async fn the_orchestration_timeout_counts_from_its_start_not_its_time_in_the_queue() {
    // Generous margins: the tests run in parallel on a small machine.
    let env = Env::new().set("ORCHESTRATION_TIMEOUT", "4").set("CLAUDE_WORKER_MAX_CONCURRENT", "1");
    let client = env.server().await;
    client.create("first", "first @sleep=1", json!({})).await;
    client.create("queued", "queued @sleep=3", json!({})).await;
    assert_eq!(client.wait_task("first", 20.0).await["status"], "completed");
    let queued = client.wait_task("queued", 20.0).await;
    assert_eq!(queued["status"], "completed", "over 4 s after creation, but about 3 s after it started: {queued}");
    client.stop().await;
}

#[tokio::test]
async fn no_request_however_large_holds_the_write_lock_while_it_is_refused() {
    let env = Env::new();
    let client = env.server().await;
    client.create("build", "build", json!({})).await;
    // 200 stored identifiers for a "did you mean" to rank (waiting behind a task that does not
    // end, so that only two CLIs run).
    for orchestration in 0..2 {
        let mut tasks = vec![json!({ "identifier": "gate", "execution_prompt": "gate @sleep=60" })];
        tasks.extend((0..99).map(|i| {
            json!({ "identifier": format!("a-fairly-long-identifier-{orchestration}-{i}"), "execution_prompt": "x",
                    "depends_on": ["gate"] })
        }));
        client.ok("create_orchestration", json!({ "tasks": tasks })).await;
    }
    // Another writer on the database takes the write lock over and over while the large requests
    // are in flight; it must never wait long (a lock held for seconds would show).
    let db = env.db_path();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(db).expect("open");
            conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
            let mut longest = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").expect("the write lock within the busy timeout");
                longest = longest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
            longest
        })
    };
    let huge = "b".repeat(6 * 1024 * 1024);
    let message = client
        .err("create_task", json!({ "task_identifier": "test", "execution_prompt": "x", "depends_on": [huge] }))
        .await;
    assert!(message.len() < 1000, "the message does not repeat the input: {} bytes", message.len());
    assert!(message.contains("must be 1 to 100 characters") && message.contains("6291456 bytes"), "{message}");
    let message = client.err("get_status", json!({ "task": huge })).await;
    assert!(message.len() < 1000 && message.contains("no task"), "{}", &message[..message.len().min(300)]);
    let many: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
    let message = client
        .err("create_task", json!({ "task_identifier": "test", "execution_prompt": "x", "depends_on": many }))
        .await;
    assert!(message.contains("MAX_TASKS_PER_ORCHESTRATION"), "{message}");
    let tasks: Vec<_> =
        (0..20_000).map(|i| json!({ "identifier": format!("t{i}"), "execution_prompt": "x" })).collect();
    let message = client.err("create_orchestration", json!({ "tasks": tasks })).await;
    assert!(message.contains("MAX_TASKS_PER_ORCHESTRATION"), "{message}");
    // An unknown dependency that could exist is still answered with what it could have meant.
    let message = client
        .err("create_task", json!({ "task_identifier": "test", "execution_prompt": "x", "depends_on": ["biuld"] }))
        .await;
    assert!(message.contains("matches no task") && message.contains("known identifiers: build"), "{message}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let longest = writer.await.expect("writer");
    assert!(longest < Duration::from_secs(2), "another writer waited {longest:?} for the write lock");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 201, "nothing of the refused requests was stored");
    for orchestration in [2, 3] {
        client.ok("cancel", json!({ "orchestration_id": orchestration })).await;
    }
    client.stop().await;
}
