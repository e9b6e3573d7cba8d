//! Running tasks: dependency order, orchestrations built and merged from `depends_on`, failure
//! propagation, the concurrency cap, retries, timeouts and cancels that kill whole process trees,
//! and large prompts.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::harness::{Env, alive, eventually};

/// Start and end times of each fake run, by the first word of its prompt.
fn runs_by_name(env: &Env) -> HashMap<String, (f64, f64)> {
    let mut starts: HashMap<i64, (String, f64)> = HashMap::new();
    let mut runs = HashMap::new();
    for v in env.invocations() {
        let pid = v["pid"].as_i64().expect("pid");
        let at = v["at"].as_f64().expect("at");
        if v["event"] == "start" {
            let name = v["prompt_head"].as_str().expect("prompt").split_whitespace().next().unwrap_or("").to_owned();
            starts.insert(pid, (name, at));
        } else if let Some((name, start)) = starts.remove(&pid) {
            runs.insert(name, (start, at));
        }
    }
    runs
}

#[tokio::test]
async fn twenty_task_graph_runs_in_dependency_order() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "4");
    let client = env.server().await;
    let mut tasks = Vec::new();
    for layer in 0..5 {
        for i in 0..4 {
            let depends_on: Vec<String> =
                if layer == 0 { vec![] } else { (0..4).map(|j| format!("l{}t{j}", layer - 1)).collect() };
            tasks.push(json!({
                "identifier": format!("l{layer}t{i}"),
                "execution_prompt": format!("l{layer}t{i} @sleep=0.1"),
                "depends_on": depends_on,
            }));
        }
    }
    let created = client.ok("create_orchestration", json!({ "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 120.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["completed_tasks"], 20);

    let runs = runs_by_name(&env);
    assert_eq!(runs.len(), 20, "each task ran exactly once: {runs:?}");
    for layer in 1..5 {
        let earliest_start = (0..4).map(|i| runs[&format!("l{layer}t{i}")].0).fold(f64::MAX, f64::min);
        let latest_previous_end = (0..4).map(|i| runs[&format!("l{}t{i}", layer - 1)].1).fold(0.0, f64::max);
        assert!(
            earliest_start >= latest_previous_end,
            "layer {layer} started at {earliest_start} before layer {} ended at {latest_previous_end}",
            layer - 1
        );
    }
    // The history agrees: no task was claimed before all its dependencies completed.
    let violations = env.sql_count(
        "SELECT count(*) FROM task_events c JOIN task_dependencies d ON d.task_id = c.task_id
         WHERE c.kind = 'claimed' AND NOT EXISTS (
             SELECT 1 FROM task_events e WHERE e.task_id = d.depends_on AND e.kind = 'completed' AND e.event_id < c.event_id)",
    );
    assert_eq!(violations, 0);
    client.stop().await;
}

#[tokio::test]
async fn orchestrations_form_and_merge_from_depends_on() {
    let env = Env::new();
    let client = env.server().await;
    let a = client.create("a", "a", json!({})).await;
    let b = client.create("b", "b", json!({})).await;
    let (oa, ob) = (a["orchestration_id"].as_i64().expect("id"), b["orchestration_id"].as_i64().expect("id"));
    assert_ne!(oa, ob, "tasks without depends_on start orchestrations of their own");
    let c = client.create("c", "c", json!({ "depends_on": ["a", "b"] })).await;
    assert_eq!(c["orchestration_id"], oa.min(ob), "{c}");
    assert!(c["message"].as_str().expect("message").contains("merged"), "{c}");
    let b_now = client.ok("get_status", json!({ "task": "b" })).await;
    assert_eq!(b_now["orchestration_id"], oa.min(ob));
    // The merged orchestration's id still answers, with the survivor.
    let merged = client.ok("get_status", json!({ "orchestration_id": oa.max(ob) })).await;
    assert_eq!(merged["orchestration_id"], oa.min(ob));
    assert_eq!(merged["total_tasks"], 3);
    let done = client.wait_orchestration(oa.min(ob), 30.0).await;
    assert_eq!(done["status"], "completed");
    let list = client.ok("list_orchestrations", json!({})).await;
    assert_eq!(list["count"], 1, "the merged orchestration is not listed: {list}");

    // A name given with depends_on names the dependencies' orchestration, if it has no name yet.
    let d = client.create("d", "d", json!({ "depends_on": ["c"], "orchestration": "pipeline" })).await;
    assert_eq!(d["orchestration_id"], oa.min(ob));
    let named = client.ok("get_status", json!({ "orchestration_id": oa.min(ob) })).await;
    assert_eq!(named["name"], "pipeline");
    let message =
        client.err("create_task", json!({ "task_identifier": "e", "execution_prompt": "e", "depends_on": ["#1"], "orchestration": "elsewhere" })).await;
    assert!(message.contains("\"pipeline\""), "{message}");

    // A named orchestration is joined by name.
    let x = client.create("x", "x", json!({ "orchestration": "nightly" })).await;
    let y = client.create("y", "y", json!({ "orchestration": "nightly" })).await;
    assert_eq!(x["orchestration_id"], y["orchestration_id"]);
    client.stop().await;
}

#[tokio::test]
async fn dependencies_that_already_finished() {
    let env = Env::new();
    let client = env.server().await;
    client.create("good", "good", json!({})).await;
    client.create("bad", "bad @auth", json!({})).await;
    client.wait_task("good", 30.0).await;
    let bad = client.wait_task("bad", 30.0).await;
    assert_eq!(bad["status"], "failed");

    // One dependency may be given as a plain string, as models often write it.
    let after_good = client.create("after_good", "after", json!({ "depends_on": "good" })).await;
    assert_eq!(after_good["status"], "pending", "a completed dependency is satisfied at once");
    assert_eq!(after_good["depends_on"][0]["status"], "completed");
    assert_eq!(client.wait_task("after_good", 30.0).await["status"], "completed");

    let after_bad = client.create("after_bad", "after", json!({ "depends_on": ["#2"] })).await;
    assert_eq!(after_bad["status"], "skipped");
    assert!(after_bad["message"].as_str().expect("message").contains("bad failed"), "{after_bad}");
    let status = client.ok("get_status", json!({ "task": "after_bad" })).await;
    assert_eq!(status["error"]["kind"], "dependency_failed");
    assert_eq!(env.starts().len(), 3, "the skipped task never ran");
    client.stop().await;
}

#[tokio::test]
async fn a_failing_root_skips_its_descendants_while_a_sibling_branch_completes() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "tasks": [
                { "identifier": "root", "execution_prompt": "root @auth" },
                { "identifier": "child", "execution_prompt": "child", "depends_on": ["root"] },
                { "identifier": "grandchild", "execution_prompt": "grandchild", "depends_on": ["child"] },
                { "identifier": "sibling", "execution_prompt": "sibling @sleep=0.3" },
                { "identifier": "after_sibling", "execution_prompt": "after_sibling", "depends_on": ["sibling"] },
            ] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 30.0).await;
    assert_eq!(done["status"], "failed");
    let by_name: HashMap<String, Value> = done["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["task_identifier"].as_str().expect("name").to_owned(), t.clone()))
        .collect();
    assert_eq!(by_name["root"]["status"], "failed");
    assert_eq!(by_name["root"]["error"]["kind"], "auth");
    for skipped in ["child", "grandchild"] {
        assert_eq!(by_name[skipped]["status"], "skipped");
        assert!(by_name[skipped]["error"]["message"].as_str().expect("reason").contains("root"));
    }
    assert_eq!(by_name["sibling"]["status"], "completed");
    assert_eq!(by_name["after_sibling"]["status"], "completed");
    assert_eq!((done["failed_tasks"].as_u64(), done["skipped_tasks"].as_u64()), (Some(1), Some(2)));
    let ran: Vec<String> = runs_by_name(&env).into_keys().collect();
    assert!(!ran.contains(&"child".to_owned()) && !ran.contains(&"grandchild".to_owned()), "{ran:?}");
    client.stop().await;
}

#[tokio::test]
async fn the_concurrency_cap_is_never_exceeded() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "2");
    let client = env.server().await;
    for i in 0..8 {
        client.create(&format!("t{i}"), &format!("t{i} @sleep=0.3"), json!({})).await;
    }
    for i in 0..8 {
        assert_eq!(client.wait_task(&format!("t{i}"), 60.0).await["status"], "completed");
    }
    let starts = env.starts();
    assert_eq!(starts.len(), 8);
    let max = starts.iter().map(|s| s["concurrent"].as_i64().expect("n")).max().expect("max");
    assert!(max <= 2, "at most 2 ran at once, saw {max}");
    assert_eq!(max, 2, "the cap was used");
    client.stop().await;
}

#[tokio::test]
async fn priority_goes_first() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "1");
    let client = env.server().await;
    client.create("blocker", "blocker @sleep=0.5", json!({})).await;
    eventually(20.0, "blocker to start", || (!env.starts().is_empty()).then_some(())).await;
    client.create("low", "low", json!({})).await;
    client.create("high", "high", json!({ "priority": 10 })).await;
    client.wait_task("low", 30.0).await;
    client.wait_task("high", 30.0).await;
    let order: Vec<String> = env
        .starts()
        .iter()
        .map(|s| s["prompt_head"].as_str().expect("p").split(' ').next().expect("w").to_owned())
        .collect();
    assert_eq!(order, ["blocker", "high", "low"]);
    client.stop().await;
}

#[tokio::test]
async fn a_transient_529_is_retried_and_an_auth_failure_is_not() {
    let env = Env::new();
    let client = env.server().await;
    client.create("flaky", "flaky @529-once=k1", json!({})).await;
    client.create("denied", "denied @auth", json!({})).await;
    let flaky = client.wait_task("flaky", 30.0).await;
    assert_eq!(flaky["status"], "completed", "{flaky}");
    assert_eq!(flaky["attempt"], 2);
    let denied = client.wait_task("denied", 30.0).await;
    assert_eq!(denied["status"], "failed");
    assert_eq!(denied["attempt"], 1);
    assert_eq!(denied["error"]["kind"], "auth");
    assert!(denied["error"]["message"].as_str().expect("m").contains("Invalid API key"));
    let runs: Vec<String> = env.starts().iter().map(|s| s["prompt_head"].as_str().expect("p").to_owned()).collect();
    assert_eq!(runs.iter().filter(|p| p.starts_with("flaky")).count(), 2);
    assert_eq!(runs.iter().filter(|p| p.starts_with("denied")).count(), 1);
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'retry_scheduled'"), 1);

    // Always overloaded: three attempts, then failed for good.
    client.create("overloaded", "overloaded @529", json!({ "max_attempts": 3 })).await;
    let overloaded = client.wait_task("overloaded", 30.0).await;
    assert_eq!(overloaded["status"], "failed");
    assert_eq!(overloaded["attempt"], 3);
    assert_eq!(overloaded["error"]["kind"], "overloaded");
    client.stop().await;
}

async fn grandchild_of(env: &Env) -> i32 {
    eventually(20.0, "the grandchild to start", || {
        std::fs::read_dir(&env.state).ok()?.flatten().find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with("grandchild-").then(|| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())?
        })
    })
    .await
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_tree() {
    let env = Env::new();
    let client = env.server().await;
    // Long enough for the fake CLI to start its grandchild on a loaded machine.
    client.create("stuck", "stuck @grandchild", json!({ "timeout_seconds": 5 })).await;
    let grandchild = grandchild_of(&env).await;
    assert!(alive(grandchild));
    let status = client.wait_task("stuck", 30.0).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["kind"], "timeout");
    assert_eq!(status["attempt"], 1, "a timeout is not retried");
    eventually(5.0, "the grandchild to be gone", || (!alive(grandchild)).then_some(())).await;
    client.stop().await;
}

#[tokio::test]
async fn cancel_kills_the_whole_process_tree_even_when_it_ignores_signals() {
    let env = Env::new();
    let client = env.server().await;
    client.create("tree", "tree @grandchild", json!({})).await;
    let next = client.create("next", "next", json!({ "depends_on": ["tree"] })).await["task_id"].clone();
    let last = client.create("last", "last", json!({ "depends_on": ["next"] })).await["task_id"].clone();
    let grandchild = grandchild_of(&env).await;
    let cancelled = client.ok("cancel", json!({ "task": "tree" })).await;
    assert_eq!(cancelled["cancelled"].as_array().expect("ids").len(), 1, "{cancelled}");
    assert_eq!(cancelled["skipped"], json!([next, last]), "dependents are skipped transitively: {cancelled}");
    assert_eq!(client.ok("get_status", json!({ "task": "tree" })).await["status"], "cancelled");
    eventually(5.0, "the grandchild to be gone", || (!alive(grandchild)).then_some(())).await;

    // A CLI that ignores SIGINT and SIGTERM is killed after the grace periods.
    client.create("stubborn", "stubborn @hang", json!({})).await;
    let pid = eventually(20.0, "stubborn to start", || {
        env.starts()
            .iter()
            .find(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("stubborn")))
            .map(|s| s["pid"].as_i64())
    })
    .await
    .expect("pid");
    // Let it reach its signal handlers.
    eventually(10.0, "stubborn to be running", || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().any(|l| l.starts_with("SigIgn:") && !l.ends_with("0000000000000000")).then_some(())
    })
    .await;
    let cancelled = client.ok("cancel", json!({ "task": "stubborn" })).await;
    assert_eq!(cancelled["cancelled"].as_array().expect("ids").len(), 1, "{cancelled}");
    assert!(!alive(i32::try_from(pid).expect("pid")));
    client.stop().await;
}

#[tokio::test]
async fn a_300_kib_prompt_reaches_the_cli_intact() {
    use sha2::Digest as _;
    let env = Env::new();
    let client = env.server().await;
    let prompt: String = (0..300 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect::<String>() + " é ✓";
    client.create("big", &prompt, json!({})).await;
    assert_eq!(client.wait_task("big", 30.0).await["status"], "completed");
    let start = &env.starts()[0];
    assert_eq!(start["prompt_len"].as_u64(), Some(prompt.len() as u64));
    let expected: String = sha2::Sha256::digest(prompt.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(start["prompt_sha256"].as_str(), Some(expected.as_str()));
    client.stop().await;
}

#[tokio::test]
async fn a_missing_claude_binary_fails_the_task_clearly() {
    let env = Env::new().set("CLAUDE_WORKER_CLAUDE_BIN", "/nonexistent/claude");
    let client = env.server().await;
    client.create("nobin", "x", json!({})).await;
    let status = client.wait_task("nobin", 30.0).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["kind"], "claude_not_found");
    assert!(status["error"]["message"].as_str().expect("m").contains("CLAUDE_WORKER_CLAUDE_BIN"));
    assert_eq!(status["attempt"], 1, "not retried");
    client.stop().await;
    // The server warned at start, on its stderr: into the test's stderr log, which is printed
    // only when a test fails, not into the test run's output.
    let report = env.stderr_report().expect("the server wrote on stderr");
    assert!(report.contains("cannot find the Claude Code CLI \"/nonexistent/claude\""), "{report}");
}

#[tokio::test]
async fn wait_after_dependencies_delays_the_start() {
    let env = Env::new();
    let client = env.server().await;
    client.create("first", "first", json!({})).await;
    client.create("second", "second", json!({ "depends_on": ["first"], "wait_after_dependencies": 0.8 })).await;
    client.wait_task("second", 30.0).await;
    let runs = runs_by_name(&env);
    let gap = runs["second"].0 - runs["first"].1;
    assert!(gap >= 0.75, "second started {gap:.3} s after first ended");
    client.stop().await;
}

#[tokio::test]
async fn work_until_idle_runs_what_a_server_left_behind() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "tasks": [
                { "identifier": "first", "execution_prompt": "first @sleep=30" },
                { "identifier": "second", "execution_prompt": "second", "depends_on": ["first"] },
            ] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    eventually(20.0, "first to start", || (!env.starts().is_empty()).then_some(())).await;
    // The editor goes away: the server interrupts the attempt and puts the task back in line.
    client.stop().await;
    eventually(10.0, "the interrupted CLI to end", || {
        env.invocations().iter().any(|v| v["event"] == "end").then_some(())
    })
    .await;
    let pending = env.sql_count("SELECT count(*) FROM tasks WHERE status = 'pending' AND attempt = 0");
    assert_eq!(pending, 1, "the interrupted task is pending again, its attempt not counted");

    // The headless worker runs the rest, resuming the interrupted session.
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        env.command(crate::harness::SERVER).args(["work", "--until-idle"]).output(),
    )
    .await
    .expect("work --until-idle exits when the queue is empty")
    .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty());
    let client = env.server().await;
    let done = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'released'"), 1);
    let starts = env.starts();
    assert_eq!(starts[1]["resume"], starts[0]["session"], "the second attempt resumed the first's session");
    client.stop().await;
}

#[tokio::test]
async fn a_working_directory_deleted_before_the_start_fails_the_task_clearly() {
    let env = Env::new();
    let dir = env.work.join("gone");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let client = env.server().await;
    client
        .create(
            "doomed",
            "x",
            json!({ "working_directory": dir.display().to_string(), "wait_after_dependencies": 0.5 }),
        )
        .await;
    std::fs::remove_dir(&dir).expect("rmdir");
    let status = client.wait_task("doomed", 30.0).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["kind"], "working_directory_missing");
    assert!(status["error"]["message"].as_str().expect("m").contains("recreate it"), "{status}");
    assert_eq!(status["attempt"], 1, "not retried");
    assert!(env.starts().is_empty(), "claude never ran");
    client.stop().await;
}
