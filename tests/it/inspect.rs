//! The inspect CLI on a populated database: tables, a dependency tree, logs, JSON, cancel and
//! retry, and clear one-line errors.

use serde_json::{Value, json};

use crate::harness::Env;

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "inspect failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

#[tokio::test]
async fn inspect_reads_and_manages_a_populated_database() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "name": "demo", "tasks": [
                { "identifier": "design_api", "execution_prompt": "design @tool" },
                { "identifier": "create_backend", "execution_prompt": "backend", "depends_on": ["design_api"] },
                { "identifier": "create_frontend", "execution_prompt": "frontend @auth", "depends_on": ["design_api"] },
                { "identifier": "add_tests", "execution_prompt": "tests", "depends_on": ["create_backend", "create_frontend"] },
            ] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 60.0).await;

    let list = stdout(&env.inspect(&["list"]).await);
    for name in ["design_api", "create_backend", "create_frontend", "add_tests", "completed", "failed", "skipped"] {
        assert!(list.contains(name), "list shows {name}:\n{list}");
    }
    let failed = stdout(&env.inspect(&["list", "--status", "failed"]).await);
    assert!(failed.contains("create_frontend") && !failed.contains("design_api"), "{failed}");

    let status = stdout(&env.inspect(&["status", "design_api"]).await);
    assert!(status.contains("completed") && status.contains("Final answer from mock."), "{status}");
    for event in ["created", "claimed (attempt 1)", "started (attempt 1): pid", "completed (attempt 1)"] {
        assert!(status.contains(event), "the history shows {event}: {status}");
    }
    let json: Value = serde_json::from_str(&stdout(&env.inspect(&["status", "#1", "--json"]).await)).expect("JSON");
    assert_eq!(json["task_identifier"], "design_api");
    assert_eq!(json["events"].as_array().expect("events").last().expect("one")["kind"], "completed");
    assert_eq!(json["status"], "completed");

    let orchestrations = stdout(&env.inspect(&["list-orchestrations"]).await);
    assert!(orchestrations.contains("demo") && orchestrations.contains("failed"), "{orchestrations}");
    let tree = stdout(&env.inspect(&["orchestration-status", &id.to_string()]).await);
    assert!(tree.starts_with(&format!("orchestration {id} \"demo\": failed")), "{tree}");
    let line_of = |name: &str| {
        tree.lines().find(|l| l.contains(&format!("─ {name} #"))).unwrap_or_else(|| panic!("{name} in\n{tree}"))
    };
    assert!(line_of("design_api").starts_with("└─ design_api #1 completed"), "{tree}");
    assert!(line_of("create_backend").starts_with("   ├─ create_backend"), "{tree}");
    assert!(line_of("create_frontend").contains("auth: Invalid API key"), "{tree}");
    assert!(line_of("add_tests").contains("skipped"), "{tree}");
    assert!(tree.contains("(shown above)"), "a task with two dependencies is drawn once: {tree}");
    let json: Value =
        serde_json::from_str(&stdout(&env.inspect(&["orchestration-status", &id.to_string(), "--json"]).await))
            .expect("JSON");
    assert_eq!(json["failed_tasks"], 1);
    assert_eq!(json["tasks"].as_array().expect("tasks").len(), 4);

    let logs = stdout(&env.inspect(&["logs", "design_api"]).await);
    assert!(logs.contains("Bash: echo hi-from-bash") && logs.contains("completed"), "{logs}");
    let detailed = stdout(&env.inspect(&["logs", "design_api", "--detailed"]).await);
    assert!(detailed.contains("\"type\":\"result\""), "{detailed}");
    let followed = stdout(&env.inspect(&["logs", "design_api", "--follow"]).await);
    assert_eq!(followed, logs, "--follow on a finished task prints the log and exits");

    // Retry from the CLI reopens the skipped dependent; the server runs them.
    let retried = stdout(&env.inspect(&["retry", "create_frontend", "--json"]).await);
    let retried: Value = serde_json::from_str(&retried).expect("JSON");
    assert_eq!(retried["reopened"], json!([4]));
    let frontend = client.wait_task("create_frontend", 30.0).await;
    assert_eq!(frontend["status"], "failed", "it fails again: the prompt still says @auth");

    // Cancel from the CLI: the server that runs the task stops it at its next heartbeat.
    client.create("sleeper", "sleeper @sleep=60", json!({})).await;
    crate::harness::eventually(20.0, "sleeper to start", || {
        env.starts().iter().any(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("sleeper"))).then_some(())
    })
    .await;
    let cancel: Value =
        serde_json::from_str(&stdout(&env.inspect(&["cancel", "sleeper", "--json"]).await)).expect("JSON");
    let sleeper_id = client.ok("get_status", json!({ "task": "sleeper" })).await["task_id"].clone();
    let stopped = cancel["cancelled"].as_array().expect("ids").contains(&sleeper_id)
        || cancel["stopping"].as_array().expect("ids").contains(&sleeper_id);
    assert!(stopped, "{cancel}");
    assert_eq!(client.wait_task("sleeper", 30.0).await["status"], "cancelled");
    client.stop().await;
}

#[tokio::test]
async fn inspect_errors_are_one_clear_line() {
    let env = Env::new();
    let missing = env.inspect(&["list"]).await;
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("no database at") && message.lines().count() == 1, "{message}");
    assert!(!env.db_path().exists(), "inspect never creates a database");

    let client = env.server().await;
    client.create("one", "x", json!({})).await;
    client.wait_task("one", 30.0).await;
    let unknown = env.inspect(&["status", "nobody"]).await;
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("no task nobody") && message.lines().count() == 1, "{message}");
    assert!(message.contains("`claude-worker-inspect list` shows"), "in the CLI's own words: {message}");
    client.stop().await;
}

#[tokio::test]
async fn a_cancel_from_another_process_stops_the_task_before_the_next_heartbeat() {
    let env = Env::new().set("CLAUDE_WORKER_HEARTBEAT_SECONDS", "3600").set("CLAUDE_WORKER_LEASE_SECONDS", "7200");
    let client = env.server().await;
    client.create("long", "long @sleep=120", json!({})).await;
    crate::harness::eventually(20.0, "long to start", || (!env.starts().is_empty()).then_some(())).await;
    stdout(&env.inspect(&["cancel", "long"]).await);
    let status = client.wait_task("long", 20.0).await;
    assert_eq!(status["status"], "cancelled", "{status}");
    let global = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    assert!(global.lines().any(|l| l.contains("cancel_requested")), "the CLI's event is in the global log");
    client.stop().await;
}
