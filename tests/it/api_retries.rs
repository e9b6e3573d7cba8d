//! The CLI's own retries of failing API requests (`system/api_retry`): each shows as the task's
//! current action and a step of its summary log, so that a task waiting on the API does not look
//! hung; and one whose retries cannot succeed (a refused key) is stopped and failed at once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, Env};

/// The fake CLI's `end` records.
fn ends(env: &Env) -> Vec<Value> {
    env.invocations().into_iter().filter(|v| v["event"] == "end").collect()
}

fn summary_of(status: &Value) -> String {
    std::fs::read_to_string(status["summary_log"].as_str().expect("summary_log")).expect("summary log")
}

/// Polls get_status until the task's `last_action` starts with `prefix`; panics after `seconds`.
async fn action_starting_with(client: &Client, task: &str, prefix: &str, seconds: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let status = client.ok("get_status", json!({ "task": task })).await;
        if let Some(action) = status["last_action"].as_str().filter(|a| a.starts_with(prefix)) {
            return action.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "last_action never started with {prefix:?}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refused_key_fails_the_task_at_its_second_retry_not_after_all_ten() {
    let env = Env::new();
    let client = env.server().await;
    // Without claude-worker stepping in, ten retries half a second apart.
    client.create("denied", "denied @api-retry=401,10,0.5", json!({ "max_attempts": 3 })).await;
    let status = client.wait_task("denied", 30.0).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["attempt"], 1, "a refused key is not tried again: {status}");
    assert_eq!(status["error"]["kind"], "auth", "{status}");
    let message = status["error"]["message"].as_str().expect("message");
    for words in ["401 authentication_failed", "2 requests in a row", "ANTHROPIC_API_KEY", "retry 8 more times"] {
        assert!(message.contains(words), "{words:?} not in {message:?}");
    }
    // The CLI was stopped (the fake answers SIGINT with the interrupted fixture and exit 0),
    // not left to run out its retries.
    let ends = ends(&env);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["code"], 0, "stopped with SIGINT: {ends:?}");
    let retries = ends[0]["retries"].as_u64().expect("retries");
    assert!((2..10).contains(&retries), "stopped after {retries} retries");
    // The summary log has a step per retry and the reason.
    let summary = summary_of(&status);
    assert!(summary.contains("API error 401 (authentication_failed), retry 1 of 10 in 0.5 s"), "{summary}");
    assert!(summary.contains("API error 401 (authentication_failed), retry 2 of 10 in 0.5 s"), "{summary}");
    assert!(summary.contains("auth: the API refused the credentials"), "{summary}");
    client.stop().await;
}

#[tokio::test]
async fn retries_the_api_may_still_answer_show_as_the_current_action_and_run_their_course() {
    let env = Env::new();
    let client = env.server().await;
    client.create("limited", "limited @api-retry=429,3,0.6", json!({ "max_attempts": 1 })).await;
    let action = action_starting_with(&client, "limited", "API error 429", 20.0).await;
    assert!(
        ["1", "2", "3"].iter().any(|n| action == format!("API error 429 (rate_limit), retry {n} of 3 in 0.6 s")),
        "{action}"
    );
    let status = client.wait_task("limited", 30.0).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["kind"], "rate_limited", "{status}");
    // Not stopped: the CLI made all its retries and wrote its own result.
    let ends = ends(&env);
    assert_eq!((ends[0]["code"].as_i64(), ends[0]["retries"].as_u64()), (Some(1), Some(3)), "{ends:?}");
    let summary = summary_of(&status);
    for n in 1..=3 {
        let step = format!("API error 429 (rate_limit), retry {n} of 3 in 0.6 s");
        assert_eq!(summary.matches(&step).count(), 1, "{step:?} once in {summary}");
    }
    client.stop().await;
}
