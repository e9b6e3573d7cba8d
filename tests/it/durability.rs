//! Durability, proven with real processes and signals: a server killed with SIGKILL, crashes at
//! named points, an owner frozen past its lease, four servers sharing one database, a cancel
//! across processes, a graceful shutdown, and the detached worker that finishes the queue after
//! the last server exits. Each test ends with the harness's audit of `task_events`.

use std::collections::HashMap;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::harness::{Client, Env, alive, eventually, history};

fn signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).expect("signal");
}

fn starts_of<'a>(starts: &'a [Value], prompt_head: &str) -> Vec<&'a Value> {
    starts.iter().filter(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with(prompt_head))).collect()
}

/// Waits until the server process has exited (its pid gone or a zombie).
async fn exited(client: &Client, seconds: f64) {
    eventually(seconds, "the server to exit", || (!alive(client.pid)).then_some(())).await;
}

#[tokio::test]
async fn a_task_survives_kill_9_of_its_server_and_resumes_its_session() {
    // The lease is long: the second server must notice the death through the owner lock.
    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "600");
    let first = env.server().await;
    first.create("long", "long @sleep=30", json!({})).await;
    let start = eventually(20.0, "the first attempt to start", || env.starts().into_iter().next()).await;
    eventually(10.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    signal(first.pid, Signal::SIGKILL);
    exited(&first, 10.0).await;
    let orphan = i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid");
    assert!(alive(orphan), "the CLI outlives a server killed with SIGKILL (its own process group)");

    let second = env.server().await;
    let done = second.wait_task("long", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!alive(orphan), "the old attempt's process was stopped");
    let invocations = env.invocations();
    let old_end = invocations
        .iter()
        .find(|v| v["event"] == "end" && v["pid"] == start["pid"])
        .expect("the old CLI was stopped with a signal it could record");
    let starts = env.starts();
    assert_eq!(starts.len(), 2, "one more run, not two: {starts:?}");
    assert_eq!(starts[1]["resume"], start["session"], "resumed the recorded session");
    assert!(
        old_end["at"].as_f64() < starts[1]["at"].as_f64(),
        "the old process group was gone before the new attempt began"
    );
    let events = history(&env, "long");
    let reclaimed = events.iter().find(|(kind, _)| kind == "reclaimed").expect("a reclaimed event");
    assert!(reclaimed.1.contains("exited") && reclaimed.1.contains("resumes session"), "{reclaimed:?}");
    assert_eq!(done["attempt"], 1, "the interrupted attempt is not counted: {done}");
    second.stop().await;
}

#[tokio::test]
async fn after_a_crash_at_any_point_every_task_ends_exactly_once() {
    for point in ["after_claim", "after_spawn", "before_completion_commit", "mid_promotion"] {
        let env = Env::new().set("CLAUDE_WORKER_CRASH_AT", point);
        let crashing = env.server().await;
        // The crash may come before the answer (the call then fails with the connection): the
        // tasks are stored either way (checked below).
        let tasks = json!({ "tasks": [
            { "identifier": "a", "execution_prompt": "a" },
            { "identifier": "b", "execution_prompt": "b", "depends_on": ["a"] },
            { "identifier": "c", "execution_prompt": "c", "depends_on": ["a"] },
        ] });
        let request = rmcp::model::CallToolRequestParams::new("create_orchestration")
            .with_arguments(tasks.as_object().cloned().unwrap_or_default());
        let _ = tokio::time::timeout(Duration::from_secs(60), crashing.service.call_tool(request)).await;
        exited(&crashing, 30.0).await;
        assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 3, "{point}: the tasks were stored");
        assert!(
            env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") < 3,
            "{point}: the crash came before the end"
        );

        let env = env.set("CLAUDE_WORKER_CRASH_AT", "none");
        let client = env.server().await;
        for task in ["a", "b", "c"] {
            let done = client.wait_task(task, 60.0).await;
            assert_eq!(done["status"], "completed", "{point}: {done}");
        }
        let completions = env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'completed'");
        assert_eq!(completions, 3, "{point}: each task completed exactly once");
        client.stop().await;
        for start in env.starts() {
            let pid = i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid");
            assert!(!alive(pid), "{point}: no CLI left running");
        }
    }
}

#[tokio::test]
async fn a_frozen_owner_past_its_lease_cannot_overwrite_the_newer_attempt() {
    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "2");
    let frozen = env.server().await;
    frozen.create("job", "job @sleep=30 @result=second", json!({})).await;
    let start = eventually(20.0, "the first attempt to start", || env.starts().into_iter().next()).await;
    eventually(10.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    signal(frozen.pid, Signal::SIGSTOP);

    let other = env.server().await;
    let done = other.wait_task("job", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let events = history(&env, "job");
    assert!(
        events.iter().any(|(kind, detail)| kind == "reclaimed" && detail.contains("lease")),
        "taken back because the lease expired (the owner is alive, only frozen): {events:?}"
    );
    let first_pid = i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid");
    assert!(!alive(first_pid), "the frozen owner's CLI was stopped before the task ran again");

    signal(frozen.pid, Signal::SIGCONT);
    // The thawed owner finds its run ended and its claim gone: it writes its outcome, which the
    // fence refuses. Wait until it has looked (its next heartbeat), then check nothing changed.
    let global = env.home.join("claude-worker.log");
    eventually(20.0, "the thawed owner to notice it lost the task", || {
        let log = std::fs::read_to_string(&global).unwrap_or_default();
        (log.contains("another owner holds it now") || log.contains("lost the claim")).then_some(())
    })
    .await;
    let after = other.ok("get_status", json!({ "task": "job" })).await;
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["result"], done["result"], "the newer attempt's result stands");
    assert_eq!(history(&env, "job"), events, "the stale owner wrote nothing");
    frozen.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn four_servers_share_one_database_without_running_anything_twice() {
    const TASKS: usize = 200;
    const CAP: i64 = 4;
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", &CAP.to_string());
    // All four start at once on a database that does not exist yet.
    let servers: Vec<Client> = futures::future::join_all((0..4).map(|_| env.server())).await;
    for (i, server) in servers.iter().enumerate() {
        let tasks: Vec<Value> = (0..TASKS / 4)
            .map(|j| {
                let n = i * (TASKS / 4) + j;
                json!({ "identifier": format!("t{n}"), "execution_prompt": format!("t{n}") })
            })
            .collect();
        server.ok("create_orchestration", json!({ "tasks": tasks })).await;
    }
    eventually(180.0, "every task to complete", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == TASKS as i64).then_some(())
    })
    .await;
    let starts = env.starts();
    let mut runs: HashMap<String, usize> = HashMap::new();
    for start in &starts {
        *runs.entry(start["prompt_head"].as_str().expect("prompt").to_owned()).or_default() += 1;
    }
    assert_eq!(runs.len(), TASKS, "every task ran");
    assert!(runs.values().all(|&n| n == 1), "no task ran twice");
    let max = starts.iter().map(|s| s["concurrent"].as_i64().expect("n")).max().expect("max");
    assert!(max <= CAP, "at most {CAP} ran at once across the four servers, saw {max}");
    let owners = env.sql_count("SELECT count(DISTINCT owner) FROM task_events WHERE kind = 'claimed'");
    assert!(owners >= 2, "the servers shared the work ({owners} claimed)");
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_cancel_in_one_server_stops_a_task_running_in_another() {
    let env = Env::new();
    let runner = env.server().await;
    runner.create("long", "long @sleep=60", json!({})).await;
    eventually(20.0, "the task to start", || env.starts().into_iter().next()).await;
    let other = env.server().await;
    let cancelled = other.ok("cancel", json!({ "task": "long" })).await;
    assert!(
        cancelled["message"].as_str().is_some_and(|m| m.contains("Still stopping 1 running task: #1")),
        "{cancelled}"
    );
    let done = runner.wait_task("long", 20.0).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    runner.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn sigterm_interrupts_releases_for_resume_and_leaves_no_process() {
    a_stop_signal_interrupts_releases_for_resume_and_leaves_no_process(Signal::SIGTERM).await;
}

/// A closed terminal (SIGHUP) is a stop like SIGTERM, not a death that strands the task.
#[tokio::test]
async fn sighup_interrupts_releases_for_resume_and_leaves_no_process() {
    a_stop_signal_interrupts_releases_for_resume_and_leaves_no_process(Signal::SIGHUP).await;
}

async fn a_stop_signal_interrupts_releases_for_resume_and_leaves_no_process(stop: Signal) {
    let env = Env::new();
    let client = env.server().await;
    client.create("long", "long @sleep=60", json!({})).await;
    let start = eventually(20.0, "the task to start", || env.starts().into_iter().next()).await;
    eventually(10.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    let asked = std::time::Instant::now();
    signal(client.pid, stop);
    exited(&client, 10.0).await;
    assert!(asked.elapsed() < Duration::from_secs(10), "exited within 10 s");
    let pid = i32::try_from(start["pid"].as_i64().expect("pid")).expect("pid");
    assert!(!alive(pid), "no CLI left behind");
    let end = env.invocations().into_iter().find(|v| v["event"] == "end").expect("the CLI ended");
    assert_eq!(end["code"], 0, "it was interrupted with SIGINT and wrote its final result");
    let events = history(&env, "long");
    let released = events.last().expect("events");
    assert_eq!(released.0, "released", "{events:?}");
    assert!(released.1.contains("resumes session"), "{released:?}");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM tasks WHERE status = 'pending' AND resume_session_id IS NOT NULL"),
        1
    );
}

#[tokio::test]
async fn the_detached_worker_finishes_the_queue_after_the_last_server_exits() {
    let env = Env::new().set("CLAUDE_WORKER_DETACH_ON_EXIT", "true");
    let a = env.server().await;
    let b = env.server().await;
    a.ok(
        "create_orchestration",
        json!({ "tasks": [
            { "identifier": "first", "execution_prompt": "first @sleep=30" },
            { "identifier": "second", "execution_prompt": "second", "depends_on": ["first"] },
        ] }),
    )
    .await;
    eventually(20.0, "first to start", || env.starts().into_iter().next()).await;
    let conn = rusqlite::Connection::open_with_flags(env.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let owner: String =
        conn.query_row("SELECT owner FROM tasks WHERE task_identifier = 'first'", [], |row| row.get(0)).expect("owner");
    drop(conn);
    let (running, idle) = if owner.contains(&format!(":{}:", a.pid)) { (a, b) } else { (b, a) };
    let global = env.home.join("claude-worker.log");
    let detached = || std::fs::read_to_string(&global).unwrap_or_default().matches("started a detached worker").count();

    // Work is left, but another server is alive: the idle one leaves no worker behind.
    let idle_pid = idle.pid;
    idle.stop().await;
    eventually(15.0, "the idle server to exit", || (!alive(idle_pid)).then_some(())).await;
    assert_eq!(detached(), 0);

    // The last server goes while its task runs: it releases it and starts the worker.
    let running_pid = running.pid;
    running.stop().await;
    eventually(15.0, "the last server to exit", || (!alive(running_pid)).then_some(())).await;
    assert_eq!(detached(), 1);
    eventually(60.0, "the detached worker to run the queue", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == 2).then_some(())
    })
    .await;
    let starts = env.starts();
    let first = starts_of(&starts, "first");
    assert_eq!(first.len(), 2, "first ran once more, no more: {first:?}");
    assert_eq!(first[1]["resume"], first[0]["session"], "resuming its session");
    let owners = claude_worker::owners::owners_dir(&env.db_path());
    eventually(20.0, "the detached worker to exit once idle", || {
        (std::fs::read_dir(&owners).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_owner_that_lost_its_claim_stops_its_cli_and_writes_nothing() {
    let env = Env::new();
    let client = env.server().await;
    client.create("long", "long @sleep=60", json!({})).await;
    let start = eventually(20.0, "the task to start", || env.starts().into_iter().next()).await;
    // Another executor, on a host whose processes this one cannot see, took the task over.
    let conn = rusqlite::Connection::open(env.db_path()).expect("db");
    conn.execute("UPDATE tasks SET owner = 'elsewhere:1:1', fence = fence + 1 WHERE task_identifier = 'long'", [])
        .expect("take over");
    drop(conn);
    let ended = eventually(10.0, "the CLI to be stopped at the next heartbeat", || {
        env.invocations().into_iter().find(|v| v["event"] == "end" && v["pid"] == start["pid"])
    })
    .await;
    assert_eq!(ended["code"], 0, "stopped with SIGINT: {ended}");
    let owner = env.sql_count("SELECT count(*) FROM tasks WHERE owner = 'elsewhere:1:1' AND status = 'running'");
    assert_eq!(owner, 1, "the stale owner wrote nothing over the new claim");
    client.stop().await;
}
