//! A CLI that fails on its own, not because claude-worker stopped it: killed by a signal nobody
//! here sent, crashed in the middle of its session, or refusing to start. The first two are
//! retried; the last is not; each says how it ended and quotes the end of its stderr.

use serde_json::{Value, json};

use crate::harness::Env;

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
