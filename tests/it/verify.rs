//! Checked completion with the real binary: a task's `verify` command passing, failing and then
//! fixed on the resumed session, failing for good (`verification_failed`), hanging until its
//! timeout, stopped by a cancel, and taken back with its task after a kill -9 of the server; and
//! who may set one (refused over MCP unless `CLAUDE_WORKER_ALLOW_VERIFY` allows it, always
//! allowed from `claude-worker run`).

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::harness::{Env, SERVER, alive, eventually, finished, history, text};

fn kinds(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(kind, _)| kind.as_str()).filter(|k| k.starts_with("verify_")).collect()
}

fn summary_log(status: &Value) -> String {
    std::fs::read_to_string(status["summary_log"].as_str().expect("summary_log")).expect("the summary log")
}

fn detailed_log(status: &Value) -> String {
    std::fs::read_to_string(status["detailed_log"].as_str().expect("detailed_log")).expect("the detailed log")
}

/// A pid a check wrote into a file of the test's state directory, once it is there.
async fn pid_in(env: &Env, name: &str) -> i32 {
    let path = env.state.join(name);
    eventually(30.0, name, || std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok())).await
}

#[tokio::test]
async fn a_passing_check_completes_the_task_and_is_in_the_logs_and_history() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true");
    let client = env.server().await;
    // The orchestration's verify is the default of its tasks; a task's "" opts out.
    let created = client
        .ok(
            "create_orchestration",
            json!({
                "name": "checked",
                "verify": "echo all 3 checks passed",
                "tasks": [
                    { "identifier": "build", "execution_prompt": "@result=built", "verify_timeout_seconds": 30 },
                    { "identifier": "notes", "execution_prompt": "@result=noted", "verify": "" },
                ],
            }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 60.0).await;
    let build = client.ok("get_status", json!({ "task": "build" })).await;
    assert_eq!(build["status"], "completed", "{build}");
    assert_eq!(build["result"], "built");
    assert_eq!(build["verify"], "echo all 3 checks passed");
    assert_eq!((build["verify_timeout_seconds"].as_u64(), build["verify_attempts"].as_u64()), (Some(30), Some(2)));
    let notes = client.ok("get_status", json!({ "task": "notes" })).await;
    assert_eq!(notes["status"], "completed");
    assert!(notes.get("verify").is_none(), "no verify, none shown: {notes}");

    assert_eq!(env.starts().len(), 2, "one run each: a passing check asks for nothing");
    let events = history(&env, "build");
    assert_eq!(kinds(&events), ["verify_passed"], "{events:?}");
    let summary = summary_log(&build);
    assert!(summary.contains("verify `echo all 3 checks passed` passed in"), "{summary}");
    let detailed = detailed_log(&build);
    assert!(detailed.contains("[verify] all 3 checks passed"), "{detailed}");
    assert!(kinds(&history(&env, "notes")).is_empty());

    // The inspect CLI shows the setting and the history.
    let shown = env.inspect(&["status", "build"]).await;
    let shown = text(&shown.stdout);
    assert!(shown.contains("verify:      echo all 3 checks passed (timeout 30 s, up to 2 fixes)"), "{shown}");
    assert!(shown.contains("verify_passed"), "{shown}");
    client.stop().await;
}

#[tokio::test]
async fn a_failing_check_is_fixed_on_the_resumed_session() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true");
    let client = env.server().await;
    let verify = "test -f fixed.txt || { echo 'error: fixed.txt is missing'; exit 3; }";
    client.create("repair", "@fix-creates=fixed.txt @cost=0.25 @result=repaired", json!({ "verify": verify })).await;
    let done = client.wait_task("repair", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 1, "the fix is part of the same attempt: {done}");
    assert!((done["cost_usd"].as_f64().expect("cost") - 0.5).abs() < 1e-9, "both runs are paid for: {done}");

    let starts = env.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1]["resume"], starts[0]["session"], "the fix resumed the first run's session");
    let prompt = starts[1]["stdin_prompt"].as_str().expect("the fix prompt");
    assert!(prompt.contains(verify), "the command: {prompt}");
    assert!(prompt.contains("exit code 3"), "how it ended: {prompt}");
    assert!(prompt.contains("error: fixed.txt is missing"), "the end of its output: {prompt}");
    assert!(prompt.contains("Do not change, skip or weaken the check"), "{prompt}");
    assert_eq!(done["session_id"], starts[0]["session"]);

    let events = history(&env, "repair");
    assert_eq!(kinds(&events), ["verify_failed", "verify_passed"], "{events:?}");
    let failed = &events.iter().find(|(k, _)| k == "verify_failed").expect("failed").1;
    assert!(failed.contains("exit code 3") && failed.contains("asking for fix 1 of 2"), "{failed}");
    let summary = summary_log(&done);
    assert!(summary.contains("failed (exit code 3)"), "{summary}");
    assert!(summary.contains("fix 1 of 2: resuming session"), "{summary}");
    assert!(summary.contains("passed after 1 fix"), "{summary}");
    client.stop().await;
}

#[tokio::test]
async fn a_check_that_keeps_failing_fails_the_task_with_its_output() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true");
    let client = env.server().await;
    let verify = "echo 'test parse ... FAILED' >&2; echo 'test result: 1 failed'; exit 101";
    client.create("stubborn", "@result=done", json!({ "verify": verify, "verify_attempts": 1 })).await;
    let done = client.wait_task("stubborn", 60.0).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "verification_failed", "{done}");
    let message = done["error"]["message"].as_str().expect("message");
    assert!(message.contains("still failed after 1 fix (exit code 101)"), "{message}");
    assert!(message.contains("test parse ... FAILED\ntest result: 1 failed"), "stderr interleaved: {message}");
    assert_eq!(done["attempt"], 1, "not retried as a transient failure: {done}");
    assert_eq!(env.starts().len(), 2, "the run and one fix");
    assert_eq!(kinds(&history(&env, "stubborn")), ["verify_failed", "verify_failed"]);
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'claimed'"), 1);
    client.stop().await;
}

#[tokio::test]
async fn a_hanging_check_is_stopped_at_its_timeout_with_what_it_started() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true");
    let client = env.server().await;
    let pid_file = env.state.join("check-sleep.pid");
    let verify = format!("sleep 600 & echo $! > {}; echo waiting; wait", pid_file.display());
    client
        .create("hangs", "@result=done", json!({ "verify": verify, "verify_timeout_seconds": 1, "verify_attempts": 0 }))
        .await;
    let done = client.wait_task("hangs", 60.0).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "verification_failed");
    let message = done["error"]["message"].as_str().expect("message");
    assert!(message.contains("stopped at its timeout after 1 s"), "{message}");
    assert!(message.contains("no fix was asked for"), "{message}");
    assert!(message.ends_with("waiting"), "{message}");
    let sleeper = pid_in(&env, "check-sleep.pid").await;
    assert!(!alive(sleeper), "the check's child {sleeper} was stopped with it");
    client.stop().await;
}

#[tokio::test]
async fn a_cancel_during_the_check_stops_it_at_once() {
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true");
    let client = env.server().await;
    let pid_file = env.state.join("check-sleep.pid");
    let verify = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
    client.create("checked", "@result=done", json!({ "verify": verify })).await;
    let sleeper = pid_in(&env, "check-sleep.pid").await;
    // What the task does now is written within a quarter of a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.ok("get_status", json!({ "task": "checked" })).await;
        assert_eq!(status["status"], "running");
        if status["last_action"].as_str().is_some_and(|a| a.starts_with("verify: sleep 600")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the check never showed as the last action: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = tokio::time::Instant::now();
    client.ok("cancel", json!({ "task": "checked" })).await;
    let done = client.wait_task("checked", 30.0).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(asked.elapsed() < Duration::from_secs(10), "stopped at once, not at the check's timeout");
    eventually(5.0, "the check's child to be gone", || (!alive(sleeper)).then_some(())).await;
    assert_eq!(env.starts().len(), 1, "no fix was asked for a check that was stopped");
    client.stop().await;
}

#[tokio::test]
async fn a_server_killed_during_the_check_leaves_the_task_to_be_taken_back() {
    // The lease is long: the second server must notice the death through the owner lock.
    let env = Env::new().set("CLAUDE_WORKER_ALLOW_VERIFY", "true").set("CLAUDE_WORKER_LEASE_SECONDS", "600");
    let first = env.server().await;
    let (marker, pid_file) = (env.state.join("checked-once"), env.state.join("check-sleep.pid"));
    // Hangs the first time, passes the second.
    let verify = format!(
        "if [ -f {m} ]; then echo second check; exit 0; fi; touch {m}; sleep 600 & echo $! > {p}; wait",
        m = marker.display(),
        p = pid_file.display()
    );
    first.create("survivor", "@result=done", json!({ "verify": verify })).await;
    let sleeper = pid_in(&env, "check-sleep.pid").await;
    // Recorded before the check started, not a moment later.
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL"), 1);
    kill(Pid::from_raw(first.pid), Signal::SIGKILL).expect("kill -9 the server");
    eventually(10.0, "the server to exit", || (!alive(first.pid)).then_some(())).await;
    assert!(alive(sleeper), "the check outlives a server killed with SIGKILL (its own process group)");

    let second = env.server().await;
    let done = second.wait_task("survivor", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!alive(sleeper), "recovery found the check by the attempt's tag and stopped it");
    let starts = env.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1]["resume"], starts[0]["session"], "the session was resumed, then checked again");
    let events = history(&env, "survivor");
    let order: Vec<&str> = events
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| matches!(*k, "reclaimed" | "verify_passed" | "verify_failed" | "completed"))
        .collect();
    assert_eq!(order, ["reclaimed", "verify_passed", "completed"], "{events:?}");
    assert_eq!(done["attempt"], 1, "the interrupted attempt is not counted: {done}");
    second.stop().await;
}

#[tokio::test]
async fn verify_over_mcp_is_refused_unless_the_server_allows_it() {
    let env = Env::new();
    let client = env.server().await;
    let refused = client
        .err("create_task", json!({ "task_identifier": "t", "execution_prompt": "x", "verify": "cargo test" }))
        .await;
    assert!(refused.contains("CLAUDE_WORKER_ALLOW_VERIFY"), "{refused}");
    assert!(refused.contains("claude mcp add claude-worker -s user -e CLAUDE_WORKER_ALLOW_VERIFY="), "{refused}");
    // The orchestration's default is refused the same way, and nothing is stored.
    let refused = client
        .err(
            "create_orchestration",
            json!({ "verify": "cargo test", "tasks": [{ "identifier": "a", "execution_prompt": "x" }] }),
        )
        .await;
    assert!(refused.contains("CLAUDE_WORKER_ALLOW_VERIFY"), "{refused}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0);

    // From a shell it is the person's own command.
    let output = finished(
        env.command(SERVER)
            .args([
                "run",
                "@result=ok",
                "--identifier",
                "mine",
                "--verify",
                "echo mine; true",
                "--verify-attempts",
                "0",
            ])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let done = client.wait_task("mine", 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["verify"], "echo mine; true");
    assert_eq!(done["verify_attempts"], 0);
    client.stop().await;

    let allowed = env.server_with_var("CLAUDE_WORKER_ALLOW_VERIFY", "true").await;
    allowed.create("any", "@result=ok", json!({ "verify": "echo fine; true" })).await;
    allowed.stop().await;

    let listed = env.server_with_var("CLAUDE_WORKER_ALLOW_VERIFY", "test -d,echo ok").await;
    listed.create("prefix", "@result=ok", json!({ "verify": "test -d ." })).await;
    listed.create("exact", "@result=ok", json!({ "verify": "echo ok" })).await;
    for (identifier, command) in [
        ("other", "make check"),
        ("chained", "echo ok; rm -rf ~"),
        ("substituted", "test -d $(rm -rf ~)"),
        ("piped", "echo ok | sh"),
        ("lookalike", "echo okay"),
    ] {
        let refused = listed
            .err("create_task", json!({ "task_identifier": identifier, "execution_prompt": "x", "verify": command }))
            .await;
        assert!(refused.contains("is not allowed on this server"), "{command}: {refused}");
        assert!(refused.contains("\"test -d\", \"echo ok\""), "{command}: {refused}");
    }
    assert_eq!(
        env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier IN ('other', 'chained', 'substituted', 'piped', 'lookalike')"),
        0,
        "nothing refused was stored"
    );
    listed.stop().await;
}

#[tokio::test]
async fn orchestrate_gives_its_verify_to_the_tasks_that_name_none() {
    let env = Env::new();
    let client = env.server().await;
    let file = env.work.join("checked.json");
    let workflow = json!({
        "name": "checked",
        "verify": "echo from the file",
        "tasks": [
            { "identifier": "a", "execution_prompt": "@result=a" },
            { "identifier": "b", "execution_prompt": "@result=b", "verify": "echo its own" },
            { "identifier": "c", "execution_prompt": "@result=c", "verify": "" },
        ],
    });
    std::fs::write(&file, workflow.to_string()).expect("write the workflow");
    let output = finished(
        env.command(SERVER)
            .args(["orchestrate", "checked.json", "--verify", "echo from the flag"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(output.status.success(), "a person's own command needs no leave: {}", text(&output.stderr));
    let a = client.wait_task("a", 30.0).await;
    assert_eq!((a["status"].as_str(), a["verify"].as_str()), (Some("completed"), Some("echo from the flag")), "{a}");
    let b = client.wait_task("b", 30.0).await;
    assert_eq!(b["verify"], "echo its own", "{b}");
    let c = client.wait_task("c", 30.0).await;
    assert!(c.get("verify").is_none(), "{c}");
    assert_eq!(kinds(&history(&env, "a")), ["verify_passed"]);
    client.stop().await;
}
