//! A CLI that fails on its own, not because claude-worker stopped it: killed by a signal nobody
//! here sent, crashed in the middle of its session, or refusing to start. The first two are
//! retried; the last is not; each says how it ended and quotes the end of its stderr. And the
//! system prompts, which reach the CLI through private files, never its argv, and are removed
//! when the attempt ends: completed, cancelled, or recovered after its server was killed.

use std::path::PathBuf;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::harness::{Env, alive, eventually};

fn message(task: &Value) -> String {
    task["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_cli_killed_by_a_signal_nobody_here_sent_is_retried_and_the_signal_named() {
    let env = Env::new();
    let client = env.server().await;
    client.create("oom", "oom @die=KILL @stderr-lines=3", json!({ "max_attempts": 2 })).await;
    client.create("pipe", "pipe @die=PIPE", json!({ "max_attempts": 1 })).await;
    let oom = client.wait_task("oom", 30.0).await;
    assert_eq!((&oom["status"], &oom["error"]["kind"]), (&json!("failed"), &json!("killed_by_signal")), "{oom}");
    assert_eq!(oom["attempt"], 2, "retried until its attempts ran out: {oom}");
    let text = message(&oom);
    assert!(text.contains("SIGKILL (signal 9)") && text.contains("out-of-memory"), "{text}");
    assert!(text.contains("stderr line 1 / stderr line 2 / stderr line 3"), "{text}");
    let pipe = client.wait_task("pipe", 30.0).await;
    assert_eq!(pipe["error"]["kind"], "killed_by_signal", "{pipe}");
    assert!(message(&pipe).contains("SIGPIPE (signal 13)"), "{pipe}");
    client.stop().await;
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_session_is_retried_a_refusal_to_start_is_not() {
    let env = Env::new();
    let client = env.server().await;
    client.create("crash", "crash @exit=3 @stderr-lines=40", json!({ "max_attempts": 2 })).await;
    client.create("usage", "usage @usage-error", json!({ "max_attempts": 3 })).await;
    client.create("after", "after", json!({ "depends_on": ["usage"] })).await;
    let crash = client.wait_task("crash", 30.0).await;
    assert_eq!((&crash["status"], &crash["error"]["kind"]), (&json!("failed"), &json!("cli_crashed")), "{crash}");
    assert_eq!(crash["attempt"], 2, "{crash}");
    let text = message(&crash);
    assert!(text.contains("exited with code 3"), "{text}");
    // The last ten lines of stderr, no more.
    assert!(text.contains("stderr line 31 / ") && text.ends_with("stderr line 40"), "{text}");
    assert!(!text.contains("stderr line 30 "), "{text}");

    let usage = client.wait_task("usage", 30.0).await;
    assert_eq!((&usage["status"], &usage["error"]["kind"]), (&json!("failed"), &json!("cli_error")), "{usage}");
    assert_eq!(usage["attempt"], 1, "a CLI that refuses to start is not tried again: {usage}");
    let text = message(&usage);
    assert!(text.contains("code 1") && text.contains("error: unknown option '--bogus'"), "{text}");
    let after = client.wait_task("after", 30.0).await;
    assert_eq!(after["status"], "skipped", "{after}");
    let runs = env.invocations().iter().filter(|v| v["event"] == "end").count();
    assert_eq!(runs, 3, "two runs of the crash, one of the refusal");
    client.stop().await;
}

/// The prompt files a run of the fake CLI read: (path of the system prompt's, its record).
fn prompt_files(start: &Value) -> (PathBuf, &Value) {
    let file = &start["system_prompt_file"];
    (PathBuf::from(file["path"].as_str().expect("a --system-prompt-file")), file)
}

#[tokio::test]
async fn system_prompts_reach_the_cli_through_private_files_and_not_its_argv() {
    let env = Env::new();
    let client = env.server().await;
    let system = "- SYSTEM-SECRET-41c7\nsecond line";
    client
        .create("private", "private", json!({ "system_prompt": system, "append_system_prompt": "APPEND-SECRET-9e2a" }))
        .await;
    let done = client.wait_task("private", 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let start = env.starts().into_iter().next().expect("a run");
    let argv = start["argv"].to_string();
    assert!(!argv.contains("SECRET"), "no prompt in the argv: {argv}");
    let (path, file) = prompt_files(&start);
    assert_eq!(file["text"], system, "{start}");
    assert_eq!((&file["mode"], &file["dir_mode"]), (&json!("0o600"), &json!("0o700")), "{start}");
    assert_eq!(start["append_system_prompt_file"]["text"], "APPEND-SECRET-9e2a", "{start}");
    // Gone by the time the outcome is known.
    assert!(!path.exists(), "{} is removed", path.display());
    assert!(!path.parent().expect("dir").exists(), "its directory too");

    // Stopped by a cancel, the attempt takes its files with it.
    client.create("stopped", "stopped @sleep=60", json!({ "system_prompt": "SECRET-2" })).await;
    let start = eventually(20.0, "the run to start", || {
        env.starts().into_iter().find(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("stopped")))
    })
    .await;
    let (path, _) = prompt_files(&start);
    assert!(path.exists(), "there while the attempt runs");
    client.ok("cancel", json!({ "task": "stopped" })).await;
    let cancelled = client.wait_task("stopped", 30.0).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(!path.parent().expect("dir").exists(), "removed when the attempt was stopped");
    client.stop().await;
}

#[tokio::test]
async fn the_prompt_files_of_a_killed_server_are_removed_by_its_recovery() {
    // The lease is long: the second server notices the death through the owner lock.
    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "600");
    let first = env.server().await;
    first.create("orphan", "orphan @sleep=30", json!({ "system_prompt": "SECRET-3" })).await;
    let start = eventually(20.0, "the run to start", || env.starts().into_iter().next()).await;
    let (path, _) = prompt_files(&start);
    kill(Pid::from_raw(first.pid), Signal::SIGKILL).expect("kill");
    eventually(10.0, "the server to exit", || (!alive(first.pid)).then_some(())).await;
    assert!(path.exists(), "nothing removed them yet");
    let second = env.server().await;
    eventually(30.0, "the old attempt's files to go", || (!path.parent().expect("dir").exists()).then_some(())).await;
    let done = second.wait_task("orphan", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    second.stop().await;
}

#[tokio::test]
async fn a_session_that_cannot_be_resumed_after_its_server_was_killed_starts_over() {
    // The lease is long: the second server notices the death through the owner lock.
    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "600");
    let first = env.server().await;
    first.create("cut", "cut @sleep=6 @resume-fails", json!({ "max_attempts": 1 })).await;
    eventually(20.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    kill(Pid::from_raw(first.pid), Signal::SIGKILL).expect("kill");
    eventually(10.0, "the server to exit", || (!alive(first.pid)).then_some(())).await;
    let second = env.server().await;
    let done = second.wait_task("cut", 60.0).await;
    // Not failed for a CLI that would not take the old transcript: run again from the start.
    assert_eq!(done["status"], "completed", "{done}");
    let starts = env.starts();
    assert_eq!(starts.len(), 3, "the first run, the failed resume, a fresh run: {starts:?}");
    assert!(starts[1]["resume"].is_string() && starts[2]["resume"].is_null(), "{starts:?}");
    let said = "SELECT count(*) FROM task_events WHERE detail LIKE '%could not resume the interrupted session%transcript ends%'";
    assert_eq!(env.sql_count(said), 1, "the history says why it started over");
    second.stop().await;
}
