//! Every MCP tool's happy path, and the mistakes a caller can make: each is an `isError` result
//! with a message that says what to do, and nothing is stored.

use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn create_task_runs_and_records_what_happened() {
    let env = Env::new();
    let client = env.server().await;
    let created = client.create("hello", "say hello @tool", json!({ "model": "opus" })).await;
    assert_eq!(created["task_identifier"], "hello");
    assert_eq!(created["status"], "pending");
    assert!(created["message"].as_str().expect("message").contains("hello"));
    let id = created["task_id"].as_i64().expect("task_id");

    let status = client.wait_task("hello", 30.0).await;
    assert_eq!(status["kind"], "task");
    assert_eq!(status["status"], "completed");
    assert_eq!(status["task_id"], id);
    assert_eq!(status["attempt"], 1);
    assert_eq!(status["model"], "opus");
    assert_eq!(status["result"], "Final answer from mock.");
    assert!((status["cost_usd"].as_f64().expect("cost") - 0.0016).abs() < 1e-9);
    assert_eq!(status["usage"]["input_tokens"], 200);
    assert_eq!(status["usage"]["output_tokens"], 40);
    assert_eq!(status["num_turns"], 2);
    assert!(status["session_id"].as_str().is_some_and(|s| s.len() == 36), "{status}");
    assert!(status["last_action"].as_str().is_some(), "{status}");
    let created_at = status["created_at"].as_str().expect("created_at");
    assert!(created_at.ends_with('Z') && created_at.len() == 24, "RFC 3339 with milliseconds: {created_at}");
    let canonical_work = std::fs::canonicalize(&env.work).expect("canonical");
    assert_eq!(status["working_directory"], canonical_work.display().to_string());

    // The CLI was called as documented: prompt on stdin, model flag, stream-json, no CLAUDECODE.
    let starts = env.starts();
    assert_eq!(starts.len(), 1);
    let argv: Vec<&str> = starts[0]["argv"].as_array().expect("argv").iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(&argv[..6], ["-p", "--output-format", "stream-json", "--verbose", "--model", "opus"]);
    assert!(argv.windows(2).any(|w| w == ["--permission-mode", "acceptEdits"]), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("say hello")), "the prompt never goes in argv");
    assert_eq!(starts[0]["prompt_head"], "say hello @tool");
    assert_eq!(starts[0]["claudecode"], serde_json::Value::Null, "CLAUDECODE is removed");
    assert_eq!(starts[0]["cwd"], canonical_work.display().to_string());

    // Logs: the summary has the tool use and the result; the detailed log has the raw stream.
    let output = client.ok("get_task_output", json!({ "task": format!("#{id}") })).await;
    assert_eq!(output["status"], "completed");
    assert_eq!(output["result"], "Final answer from mock.");
    let tail = output["summary_tail"].as_array().expect("tail");
    assert!(tail.iter().any(|l| l.as_str().is_some_and(|l| l.contains("Bash: echo hi-from-bash"))), "{tail:?}");
    assert!(tail.iter().any(|l| l.as_str().is_some_and(|l| l.contains("completed"))), "{tail:?}");
    let detailed = std::fs::read_to_string(output["detailed_log"].as_str().expect("path")).expect("detailed log");
    assert!(detailed.contains("\"type\":\"result\""));

    let tasks = client.ok("list_tasks", json!({})).await;
    assert_eq!(tasks["count"], 1);
    assert_eq!(tasks["tasks"][0]["task_identifier"], "hello");
    let orchestrations = client.ok("list_orchestrations", json!({ "status": "completed" })).await;
    assert_eq!(orchestrations["count"], 1);
    let o = &orchestrations["orchestrations"][0];
    assert_eq!((o["total_tasks"].as_u64(), o["completed_tasks"].as_u64()), (Some(1), Some(1)));
    assert!((o["cost_usd"].as_f64().expect("cost") - 0.0016).abs() < 1e-9);

    // The global log has one line per task event (written by a background thread: wait for it).
    let path = env.home.join("claude-worker.log");
    for kind in ["created", "claimed", "started", "completed"] {
        crate::harness::eventually(10.0, &format!("a {kind} line in the global log"), || {
            let global = std::fs::read_to_string(&path).unwrap_or_default();
            global.lines().any(|l| l.contains(kind) && l.contains(&format!("task_id={id}"))).then_some(())
        })
        .await;
    }
    client.stop().await;
}

#[tokio::test]
async fn create_orchestration_get_status_cancel_retry_and_wait() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({
                "name": "fullstack",
                "tasks": [
                    { "identifier": "design_api", "execution_prompt": "design", "model": "opus" },
                    { "identifier": "create_backend", "execution_prompt": "backend @sleep=30", "depends_on": ["design_api"] },
                    { "identifier": "create_frontend", "execution_prompt": "frontend", "depends_on": ["design_api"], "initial_delay": 0.1 },
                    { "identifier": "add_tests", "execution_prompt": "tests", "depends_on": ["create_backend", "create_frontend"] },
                ]
            }),
        )
        .await;
    assert_eq!(created["total_tasks"], 4);
    let orchestration_id = created["orchestration_id"].as_i64().expect("id");
    let tasks = created["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[2]["identifier"], "create_frontend");
    assert_eq!(tasks[2]["initial_delay"], 0.1);
    assert_eq!(tasks[3]["depends_on"], json!(["create_backend", "create_frontend"]));

    // Wait until the backend runs, then look at the orchestration's live counters.
    crate::harness::eventually(20.0, "backend to start", || {
        env.starts().iter().any(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("backend"))).then_some(())
    })
    .await;
    let frontend = client.wait_task("create_frontend", 20.0).await;
    assert_eq!(frontend["status"], "completed");
    let status = client.ok("get_status", json!({ "orchestration_id": orchestration_id })).await;
    assert_eq!(status["kind"], "orchestration");
    assert_eq!(status["name"], "fullstack");
    assert_eq!(status["status"], "running");
    assert_eq!(status["total_tasks"], 4);
    assert_eq!(status["completed_tasks"], 2);
    assert_eq!(status["running_tasks"], 1);
    assert_eq!(status["waiting_tasks"], 1);
    assert!(status["cost_usd"].as_f64().expect("cost") > 0.0, "cost is live: {status}");
    assert_eq!(status["tasks"].as_array().expect("tasks").len(), 4);

    // Cancel the running backend: its dependent is skipped.
    let cancelled = client.ok("cancel", json!({ "task": "create_backend", "reason": "changed my mind" })).await;
    let backend_id = tasks[1]["task_id"].as_i64().expect("id");
    let tests_id = tasks[3]["task_id"].as_i64().expect("id");
    assert_eq!(cancelled["cancelled"], json!([backend_id]), "{cancelled}");
    assert_eq!(cancelled["skipped"], json!([tests_id]), "{cancelled}");
    let backend = client.ok("get_status", json!({ "task": "create_backend" })).await;
    assert_eq!(backend["status"], "cancelled");
    assert_eq!(backend["error"]["message"], "changed my mind");
    let orchestration = client.wait_orchestration(orchestration_id, 10.0).await;
    assert_eq!(orchestration["status"], "cancelled");

    // Retry it (without the sleep this time it would still sleep: the prompt is stored) —
    // the skipped dependent reopens.
    let retried = client.ok("retry", json!({ "task": "create_backend" })).await;
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["reopened"], json!([tests_id]));
    let tests = client.ok("get_status", json!({ "task": tests_id })).await;
    assert_eq!(tests["status"], "waiting");
    let cancelled = client.ok("cancel", json!({ "orchestration_id": orchestration_id })).await;
    assert!(cancelled["cancelled"].as_array().expect("ids").contains(&json!(tests_id)), "{cancelled}");
    let orchestration = client.wait_orchestration(orchestration_id, 10.0).await;
    assert_eq!(orchestration["status"], "cancelled");
    assert_eq!(orchestration["completed_tasks"], 2);
    client.stop().await;
}

#[tokio::test]
async fn wait_sends_progress_and_times_out_honestly() {
    use futures::StreamExt as _;
    use rmcp::model::{CallToolRequestParams, ClientRequest, Request, ServerResult};
    use rmcp::service::PeerRequestOptions;

    let env = Env::new();
    let client = env.server().await;
    client.create("slow", "work @sleep=1.5", json!({})).await;
    // A short wait returns timed_out while the task runs.
    let early = client.ok("wait", json!({ "task": "slow", "timeout_seconds": 0.2 })).await;
    assert_eq!(early["timed_out"], true);
    assert_ne!(early["status"], "completed");

    let params = CallToolRequestParams::new("wait")
        .with_arguments(json!({ "task": "slow", "timeout_seconds": 30 }).as_object().cloned().expect("object"));
    let handle = client
        .service
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("send wait");
    let mut progress = client.service.service().progress.subscribe(handle.progress_token.clone()).await;
    let response = handle.await_response().await.expect("wait answered");
    let ServerResult::CallToolResult(result) = response else { panic!("unexpected response {response:?}") };
    let status = result.structured_content.expect("structured");
    assert_eq!(status["status"], "completed");
    assert_eq!(status["timed_out"], false);
    let mut notes = Vec::new();
    while let Ok(Some(note)) = tokio::time::timeout(std::time::Duration::from_millis(200), progress.next()).await {
        notes.push(note);
    }
    assert!(!notes.is_empty(), "wait sent progress notifications");
    assert!(notes.windows(2).all(|w| w[1].progress > w[0].progress), "progress only increases: {notes:?}");
    assert!(
        notes.iter().all(|n| n.total == Some(1.0) && n.progress <= 1.0),
        "progress counts finished tasks of the total (one): {notes:?}"
    );
    assert!(notes.iter().any(|n| n.message.as_deref().is_some_and(|m| m.contains("slow"))), "{notes:?}");
    client.stop().await;
}

#[tokio::test]
async fn mistakes_are_tool_errors_and_store_nothing() {
    let env = Env::new();
    let client = env.server().await;
    let cases = [
        ("create_task", json!({ "execution_prompt": "x" }), "task_identifier"),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": 5 }), "execution_prompt"),
        ("create_task", json!({ "task_identifier": "bad name", "execution_prompt": "x" }), "letters, digits"),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": "  " }), "empty"),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": "x", "depend_on": ["b"] }), "depend_on"),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": "x", "depends_on": ["ghost"] }), "ghost"),
        (
            "create_task",
            json!({ "task_identifier": "a", "execution_prompt": "x", "working_directory": "/does/not/exist" }),
            "create it first",
        ),
        (
            "create_task",
            json!({ "task_identifier": "a", "execution_prompt": "x", "permission_mode": "yolo" }),
            "not one of",
        ),
        (
            "create_task",
            json!({ "task_identifier": "a", "execution_prompt": "x", "permission_mode": "bypassPermissions" }),
            "CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS=true",
        ),
        (
            "create_task",
            json!({ "task_identifier": "a", "execution_prompt": "x", "wait_after_dependencies": 90000 }),
            "86400",
        ),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": "x", "max_attempts": 0 }), "max_attempts"),
        ("create_task", json!({ "task_identifier": "a", "execution_prompt": "x\u{0}y" }), "NUL"),
        ("create_orchestration", json!({ "tasks": [] }), "at least one task"),
        (
            "create_orchestration",
            json!({ "tasks": [
            { "identifier": "a", "execution_prompt": "x" },
            { "identifier": "a", "execution_prompt": "y" } ] }),
            "more than one task",
        ),
        (
            "create_orchestration",
            json!({ "tasks": [
            { "identifier": "a", "execution_prompt": "x", "depends_on": ["c"] },
            { "identifier": "b", "execution_prompt": "y", "depends_on": ["a"] },
            { "identifier": "c", "execution_prompt": "z", "depends_on": ["b"] } ] }),
            "a -> c -> b -> a",
        ),
        (
            "create_orchestration",
            json!({ "tasks": [
            { "identifier": "a", "execution_prompt": "x" },
            { "identifier": "b", "execution_prompt": "y", "depends_on": ["nope"] } ] }),
            "nope",
        ),
        (
            "create_orchestration",
            json!({ "tasks": [
            { "identifier": "a", "execution_prompt": "x" },
            { "identifier": "b", "execution_prompt": "y", "model": "has space" } ] }),
            "b: model",
        ),
        (
            "create_task",
            json!({ "task_identifier": "a", "execution_prompt": "x",
            "allowed_tools": ["Edit", "--permission-mode", "bypassPermissions"] }),
            "starts with '-'",
        ),
        ("get_status", json!({ "task": 1.5 }), "task identifier"),
        ("get_status", json!({}), "give task"),
        ("get_status", json!({ "task": "nobody" }), "no task nobody"),
        ("get_status", json!({ "orchestration_id": 99 }), "no orchestration 99"),
        ("list_tasks", json!({ "status": "sleeping" }), "not one of"),
        ("retry", json!({ "task": "nobody" }), "no task"),
        ("cancel", json!({ "task": "a", "orchestration_id": 1 }), "not both"),
        ("wait", json!({ "task": "a", "timeout_seconds": 601 }), "600"),
    ];
    for (tool, args, expected) in cases {
        let message = client.err(tool, args.clone()).await;
        assert!(message.contains(expected), "{tool}({args}): {message:?} should mention {expected:?}");
    }
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0, "nothing was stored");
    assert_eq!(env.sql_count("SELECT count(*) FROM orchestrations"), 0);
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events"), 0);

    // An unknown dependency lists what it could have meant; a prompt over the limit is refused.
    client.create("build_api", "x", json!({})).await;
    client.create("build_ui", "x", json!({})).await;
    let message = client
        .err("create_task", json!({ "task_identifier": "t", "execution_prompt": "x", "depends_on": ["build"] }))
        .await;
    assert!(message.contains("build_api") && message.contains("build_ui"), "{message}");
    let huge = "x".repeat(1024 * 1024 + 1);
    let message = client.err("create_task", json!({ "task_identifier": "t", "execution_prompt": huge })).await;
    assert!(message.contains("CLAUDE_WORKER_MAX_PROMPT_BYTES"), "{message}");
    // A duplicate identifier in the same orchestration is refused.
    client.create("dup", "x", json!({ "orchestration": "named" })).await;
    let message = client
        .err("create_task", json!({ "task_identifier": "dup", "execution_prompt": "y", "orchestration": "named" }))
        .await;
    assert!(message.contains("already has a task \"dup\""), "{message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 3);
    client.stop().await;
}

#[tokio::test]
async fn bypass_permissions_when_the_server_allows_it() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_BYPASS_PERMISSIONS", "true");
    let client = env.server().await;
    client.create("yolo", "x", json!({ "permission_mode": "bypassPermissions" })).await;
    client.wait_task("yolo", 30.0).await;
    let argv = env.starts()[0]["argv"].clone();
    assert!(
        argv.as_array().expect("argv").windows(2).any(|w| w[0] == "--permission-mode" && w[1] == "bypassPermissions")
    );
    client.stop().await;
}

#[tokio::test]
async fn retrying_an_orchestration_reruns_what_failed_and_what_it_skipped() {
    let env = Env::new();
    let client = env.server().await;
    // Two roots fail once (overloaded, with no attempt left), skipping their descendants; an
    // independent task completes.
    let created = client
        .ok(
            "create_orchestration",
            json!({ "tasks": [
                { "identifier": "root", "execution_prompt": "root @529-once=root", "max_attempts": 1 },
                { "identifier": "child", "execution_prompt": "child", "depends_on": ["root"] },
                { "identifier": "grandchild", "execution_prompt": "grandchild", "depends_on": ["child"] },
                { "identifier": "other", "execution_prompt": "other @529-once=other", "max_attempts": 1 },
                { "identifier": "after_other", "execution_prompt": "after_other", "depends_on": ["other"] },
                { "identifier": "fine", "execution_prompt": "fine" },
            ] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let failed = client.wait_orchestration(id, 30.0).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!((failed["failed_tasks"].as_u64(), failed["skipped_tasks"].as_u64()), (Some(2), Some(3)));

    // Exactly one of task and orchestration_id.
    let both = client.err("retry", json!({ "task": "root", "orchestration_id": id })).await;
    assert!(both.contains("not both"), "{both}");
    let neither = client.err("retry", json!({})).await;
    assert!(neither.contains("orchestration_id"), "{neither}");

    let retried = client.ok("retry", json!({ "orchestration_id": id })).await;
    assert_eq!(retried["orchestration_id"], id);
    let states: Vec<(String, String, String)> = retried["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            let field = |name: &str| t[name].as_str().expect(name).to_owned();
            (field("task_identifier"), field("was"), field("status"))
        })
        .collect();
    let expected = [
        ("root", "failed", "pending"),
        ("child", "skipped", "waiting"),
        ("grandchild", "skipped", "waiting"),
        ("other", "failed", "pending"),
        ("after_other", "skipped", "waiting"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect();
    assert_eq!(states, expected, "{retried}");
    assert_eq!(retried["reopened"].as_array().expect("ids").len(), 3);
    let message = retried["message"].as_str().expect("message");
    assert!(message.starts_with(&format!("Retried 2 tasks of orchestration {id}: root (#")), "{message}");
    assert!(message.contains("Reopened 3 tasks that had been skipped, now waiting: child (#"), "{message}");

    // The fake CLI now succeeds: everything completes, and the completed task did not run again.
    let done = client.wait_orchestration(id, 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["completed_tasks"], 6);
    let fine_runs = env.starts().iter().filter(|s| s["prompt_head"].as_str().is_some_and(|p| p == "fine")).count();
    assert_eq!(fine_runs, 1);

    // Nothing is left to retry.
    let nothing = client.err("retry", json!({ "orchestration_id": id })).await;
    assert!(nothing.contains("nothing to retry") && nothing.contains("completed"), "{nothing}");
    client.stop().await;
}

/// An orchestration too big to list whole in one answer (an MCP client drops a message over its
/// line limit, 16 MiB in rmcp, and the call would never return): the answers list 1,000 tasks,
/// the ones to look at first, and say how many they left out; the counters count them all.
#[tokio::test]
async fn answers_about_a_huge_orchestration_list_the_tasks_that_matter_and_count_the_rest() {
    let env = Env::new().set("MAX_TASKS_PER_ORCHESTRATION", "5000");
    let client = env.server().await;
    let gate = env.work.join("gate");
    let mut tasks = vec![json!({ "identifier": "hold", "execution_prompt": format!("@hold={}", gate.display()) })];
    tasks.extend(
        (0..1100).map(|i| json!({ "identifier": format!("w{i}"), "execution_prompt": "x", "depends_on": ["hold"] })),
    );
    tasks.push(json!({ "identifier": "breaks", "execution_prompt": "@auth" }));
    let created = client.ok("create_orchestration", json!({ "name": "huge", "tasks": tasks })).await;
    assert_eq!(created["total_tasks"], 1102, "{}", created["message"]);
    assert_eq!(created["tasks"].as_array().map(Vec::len), Some(1000));
    assert_eq!(created["tasks_not_listed"], 102);
    assert!(created["message"].as_str().is_some_and(|m| m.contains("get_status(task=")), "{}", created["message"]);
    let id = created["orchestration_id"].as_i64().expect("id");

    client.wait_task("breaks", 60.0).await;
    let status = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(status["total_tasks"], 1102);
    let listed = status["tasks"].as_array().expect("tasks");
    assert_eq!(listed.len(), 1000);
    assert_eq!(status["tasks_not_listed"], 102);
    assert!(
        listed.iter().any(|t| t["task_identifier"] == "breaks" && t["status"] == "failed"),
        "the failure, created last, is listed before waiting work"
    );
    let ids: Vec<i64> = listed.iter().filter_map(|t| t["task_id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "listed in their order");
    std::fs::write(&gate, "").expect("let it go");
    client.ok("cancel", json!({ "orchestration_id": id })).await;
}
