//! Servers started inside a task: Claude Code loads the servers registered for the user in every
//! `claude -p`, so each task's CLI starts a claude-worker of its own, with the attempt's tag in
//! its environment. It serves the tools (a task can queue follow-up work, which records the task
//! that queued it, up to a depth limit) but runs nothing, and exits without a word.

use serde_json::{Value, json};

use crate::harness::{Env, eventually};

/// What the fake CLI's `@mcp-queue` / `@mcp-chain` saw of the server it started, one per run.
fn nested_sessions(env: &Env) -> Vec<Value> {
    let mut sessions: Vec<Value> = std::fs::read_dir(&env.state)
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| e.file_name().to_string_lossy().starts_with("nested-"))
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).expect("read")).expect("JSON"))
        .collect();
    sessions.sort_by_key(|s| s["run_tag"].as_str().unwrap_or_default().to_owned());
    sessions
}

/// Everything the nested servers wrote on stderr.
fn nested_stderr(env: &Env) -> String {
    std::fs::read_dir(&env.state)
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".stderr"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// The owners of every claim ever made on the database.
fn claim_owners(env: &Env) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(env.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let mut stmt = conn.prepare("SELECT owner FROM task_events WHERE kind = 'claimed' ORDER BY event_id").expect("sql");
    stmt.query_map([], |row| row.get::<_, String>(0)).expect("query").map(Result::unwrap).collect()
}

fn pid_of_owner(owner: &str) -> i64 {
    owner.split(':').nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("owner {owner:?} has a pid"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_inside_a_task_runs_nothing_and_queues_follow_up_work_that_names_its_creator() {
    // Two slots: the follow-up is ready while its creator still runs, so an executor in the
    // nested server would claim it at once. A server that exits with work left would hand it
    // to a detached worker.
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "2").set("CLAUDE_WORKER_DETACH_ON_EXIT", "true");
    let server = env.server().await;
    let outer = server.create("outer", "@mcp-queue=follow-up", json!({})).await;
    let outer_id = outer["task_id"].as_i64().expect("id");
    server.wait_task("outer", 60.0).await;
    let follow_up = server.wait_task("follow-up", 60.0).await;
    assert_eq!(follow_up["status"], "completed", "{follow_up}");
    assert_eq!(follow_up["result"], "follow-up done");
    assert_eq!(follow_up["created_by"], outer_id, "{follow_up}");
    assert_eq!(follow_up["depth"], 1, "{follow_up}");
    let outer_status = server.ok("get_status", json!({ "task": "outer" })).await;
    assert!(outer_status.get("created_by").is_none(), "queued from outside any task: {outer_status}");

    let sessions = nested_sessions(&env);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(session["created"]["result"]["isError"], false, "{session}");
    assert_eq!(session["exit_code"], 0, "the nested server exits 0 at the end of its stdin: {session}");
    let nested_pid = session["server_pid"].as_i64().expect("pid");

    // Every claim is the outer server's; the nested one never took a claim.
    let owners = claim_owners(&env);
    assert_eq!(owners.len(), 2, "one claim per task, none interrupted: {owners:?}");
    for owner in &owners {
        assert_eq!(pid_of_owner(owner), i64::from(server.pid), "claimed by {owner}");
    }
    let foreign = env.sql_count(&format!("SELECT count(*) FROM task_events WHERE owner LIKE '%:{nested_pid}:%'"));
    assert_eq!(foreign, 0, "the nested server wrote no event as an owner");
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind IN ('released', 'reclaimed')"), 0);

    // It started no detached worker, and said nothing on stderr, though its client left with a
    // `wait` in flight.
    let log = std::fs::read_to_string(env.home.join("claude-worker.log")).unwrap_or_default();
    assert!(!log.contains("detached worker"), "{log}");
    assert_eq!(nested_stderr(&env), "", "a normal end is quiet");

    // The inspect CLI says who queued it, in the record and in its history.
    let status = env.inspect(&["status", "follow-up"]).await;
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains(&format!("queued by:   task #{outer_id}")), "{status}");
    assert!(status.contains(&format!(" created: queued by #{outer_id}\n")), "{status}");
    let orchestration = follow_up["orchestration_id"].as_i64().expect("orchestration").to_string();
    let tree = env.inspect(&["orchestration-status", &orchestration]).await;
    let tree = String::from_utf8_lossy(&tree.stdout).into_owned();
    assert!(tree.contains(&format!("follow-up #{} ", follow_up["task_id"])), "{tree}");
    assert!(tree.contains(&format!("(queued by #{outer_id})")), "{tree}");
    // And so does the live view, in its lines and its JSON.
    let watch = env.inspect(&["watch", &orchestration]).await;
    let watch = String::from_utf8_lossy(&watch.stdout).into_owned();
    let line = watch.lines().find(|l| l.contains(" follow-up ")).unwrap_or_default();
    assert!(line.contains(&format!("queued by #{outer_id}")), "{watch}");
    let json = env.inspect(&["watch", "--json", &orchestration]).await;
    let json = String::from_utf8_lossy(&json.stdout).into_owned();
    let change: serde_json::Value = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["task_identifier"] == "follow-up")
        .unwrap_or_default();
    assert_eq!(change["created_by"], outer_id, "{json}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_queue_tasks_stop_at_the_depth_limit() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_DEPTH", "2");
    let server = env.server().await;
    let top = server.create("top", "@mcp-chain=1", json!({})).await;
    let top_id = top["task_id"].as_i64().expect("id");
    server.wait_task("top", 60.0).await;
    let first = server.wait_task("chain-1", 60.0).await;
    let second = server.wait_task("chain-2", 60.0).await;
    assert_eq!((&first["created_by"], &first["depth"]), (&json!(top_id), &json!(1)), "{first}");
    assert_eq!((&second["created_by"], &second["depth"]), (&first["task_id"], &json!(2)), "{second}");
    // chain-2, at the limit, was refused what it tried to queue, and was told how to raise it.
    eventually(30.0, "the third nested session to be recorded", || (nested_sessions(&env).len() == 3).then_some(()))
        .await;
    let refused = nested_sessions(&env)
        .into_iter()
        .find(|s| s["run_tag"].as_str().is_some_and(|t| t.contains(&format!("/{}/", second["task_id"]))))
        .expect("chain-2's session");
    assert_eq!(refused["created"]["result"]["isError"], true, "{refused}");
    let message = refused["created"]["result"]["content"][0]["text"].as_str().expect("text").to_owned();
    assert!(message.contains("CLAUDE_WORKER_MAX_DEPTH is 2"), "{message}");
    assert!(message.contains("depth 3"), "{message}");
    assert!(message.contains("CLAUDE_WORKER_MAX_DEPTH=3"), "says how to raise it: {message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 3, "nothing at depth 3");
    assert_eq!(nested_stderr(&env), "", "a refusal is an answer, not an error of the server");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_the_database_does_not_back_is_not_believed() {
    let env = Env::new();
    let server = env.server().await;
    let real = server.create("real", "@result=done", json!({})).await;
    server.wait_task("real", 60.0).await;
    let real_id = real["task_id"].as_i64().expect("id");
    let owner = claim_owners(&env).pop().expect("a claim");

    // Started with a tag, by hand: it runs nothing, whatever the tag says.
    for (n, tag) in [
        "not a tag at all".to_owned(),
        format!("{owner}/999999/1"),
        format!("{owner}/{real_id}/7"),
        format!("someone-else:1:2/{real_id}/1"),
    ]
    .into_iter()
    .enumerate()
    {
        let client = env.server_with_var("CLAUDE_WORKER_RUN", &tag).await;
        let identifier = format!("queued-{n}");
        let created = client.create(&identifier, "@result=ok", json!({})).await;
        let status = client.ok("get_status", json!({ "task": identifier })).await;
        assert!(status.get("created_by").is_none(), "tag {tag:?} is not believed: {status}");
        assert!(status.get("depth").is_none(), "{status}");
        // The server that runs tasks runs it; the tagged one hears of it through the database
        // (it has no executor) and its `wait` returns.
        let done = client.wait_task(&format!("#{}", created["task_id"]), 60.0).await;
        assert_eq!(done["status"], "completed");
        client.stop().await;
    }
    for owner in claim_owners(&env) {
        assert_eq!(pid_of_owner(&owner), i64::from(server.pid), "claimed by {owner}");
    }
    server.stop().await;
}

/// Without an executor, a server inside a task still hears of changes (another process runs the
/// work): `wait` returns when the task ends, and subscribers are told.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_inside_a_task_hears_of_changes_without_an_executor() {
    let env = Env::new();
    let runner = env.server().await;
    let inside = env.server_with_var("CLAUDE_WORKER_RUN", "host:1:2/999/1").await;
    #[allow(deprecated)]
    inside
        .service
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new("claude-worker://tasks/1"))
        .await
        .expect("subscribe");
    let created = inside.create("from-inside", "@sleep=0.3", json!({})).await;
    assert_eq!(created["task_id"], 1);
    let done = inside.wait_task("from-inside", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    eventually(10.0, "the subscriber to hear of the task's changes", || {
        let notes = inside.notes();
        (notes.iter().any(|n| n == "updated claude-worker://tasks/1") && notes.iter().any(|n| n == "list_changed"))
            .then_some(())
    })
    .await;
    for owner in claim_owners(&env) {
        assert_eq!(pid_of_owner(&owner), i64::from(runner.pid), "claimed by {owner}");
    }
    // While it runs, it holds no owner lock: no executor on the database counts it as alive.
    let locks: Vec<String> = std::fs::read_dir(claude_worker::owners::owners_dir(&env.db_path()))
        .expect("owners dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(locks[0].contains(&format!("_{}_", runner.pid)), "the running server's: {locks:?}");
    inside.stop().await;
    runner.stop().await;
}
