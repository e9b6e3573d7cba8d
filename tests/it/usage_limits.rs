//! A subscription's usage limit (the fake CLI prints the recorded refusal with `resetsAt` a few
//! seconds ahead, so the waits here are short by the timestamp): the whole queue pauses, in every
//! process on the database, and resumes the interrupted session after the reset without counting
//! an attempt or skipping anything; a person can lift the pause early; the pause and the last
//! warning show in get_status, wait, the inspect CLI and doctor; an API key's 429 stays an
//! ordinary retry; odd reset times end sane.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, Env, eventually, text};

/// The fake CLI's start records of the task whose prompt starts with `head`.
fn starts_of(env: &Env, head: &str) -> Vec<Value> {
    env.starts().into_iter().filter(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with(head))).collect()
}

/// The details of a task's events of `kind`, in order.
fn event_details(env: &Env, task_id: i64, kind: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(env.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let mut stmt = conn
        .prepare("SELECT coalesce(detail, '') FROM task_events WHERE task_id = ?1 AND kind = ?2 ORDER BY event_id")
        .expect("prepare");
    stmt.query_map(rusqlite::params![task_id, kind], |row| row.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Polls get_status until the task waits for a usage-limit pause; returns that status.
async fn paused_status(client: &Client, task: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.ok("get_status", json!({ "task": task })).await;
        if status["paused_until"].is_string() {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {task} never paused: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn ms(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time")).expect("RFC 3339").timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sounds and notifications into a log (silently: see `feedback.rs`), for "once" across processes.
fn with_feedback(env: Env) -> (Env, PathBuf) {
    let dir = env.home.parent().expect("root").join("feedback");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let alsa = dir.join("asound.conf");
    std::fs::write(&alsa, "pcm.!default { type null }\nctl.!default { type hw card 0 }\n").expect("alsa");
    let log = dir.join("feedback.jsonl");
    let env = env
        .set("CLAUDE_WORKER_ENABLE_SOUNDS", "true")
        .set("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "true")
        .set("CLAUDE_WORKER_FEEDBACK_LOG", &log.display().to_string())
        .set("ALSA_CONFIG_PATH", &alsa.display().to_string())
        .set("PULSE_SERVER", "unix:/nonexistent/pulse")
        .set("PIPEWIRE_REMOTE", "/nonexistent/pipewire")
        .set("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    (env, log)
}

/// The sounds the feedback log recorded for `event`.
fn sounds_for(log: &Path, event: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["kind"] == "sound" && l["event"] == event)
        .count()
}

#[tokio::test]
async fn a_usage_limit_mid_graph_pauses_every_process_then_resumes_the_session_uncounted() {
    let (env, feedback) = with_feedback(Env::new().set("CLAUDE_WORKER_MAX_CONCURRENT", "2"));
    let first = env.server().await;
    // b is refused once, with the limit resetting a second from now; a single attempt allowed,
    // so that counting the refusal as one would fail it.
    let tasks = json!([
        { "identifier": "a", "execution_prompt": "a @result=a done" },
        { "identifier": "b", "execution_prompt": "b @usage-limit=1,b @result=b done", "depends_on": ["a"], "max_attempts": 1 },
        { "identifier": "c", "execution_prompt": "c @result=c done", "depends_on": ["b"] },
    ]);
    let created = first.ok("create_orchestration", json!({ "name": "limited", "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let b = paused_status(&first, "b").await;
    assert_eq!(b["status"], "pending", "{b}");
    assert_eq!(b["attempt"], 0, "the refused attempt is not counted: {b}");
    assert_eq!(b["error"]["kind"], "usage_limit", "{b}");
    let reason = b["paused_reason"].as_str().expect("paused_reason");
    assert!(reason.contains("5-hour usage limit until"), "{reason}");
    assert!(reason.contains("claude-worker-inspect resume"), "{reason}");
    let until = ms(&b["paused_until"]);
    // A second server on the same database, with work of its own: it claims nothing until the end.
    let second = env.server().await;
    second.create("other", "other @result=other done", json!({})).await;
    let other = second.ok("get_status", json!({ "task": "other" })).await;
    assert_eq!(other["paused_until"], b["paused_until"], "the pause is the account's: {other}");
    let orchestration = second.ok("list_orchestrations", json!({})).await;
    let limited = orchestration["orchestrations"]
        .as_array()
        .and_then(|list| list.iter().find(|o| o["name"] == "limited"))
        .expect("listed");
    assert_eq!(limited["paused_until"], b["paused_until"], "{limited}");
    let waited = second.ok("wait", json!({ "task": "other", "timeout_seconds": 0.2 })).await;
    assert_eq!((&waited["timed_out"], &waited["paused_until"]), (&json!(true), &b["paused_until"]), "{waited}");
    // Throughout the pause, no process starts anything.
    let started = env.starts().len();
    while now_ms() < until - 300 {
        assert_eq!(env.starts().len(), started, "a task started during the pause");
        assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'running'"), 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then it goes on by itself: b resumes its session, and the rest completes.
    let done = first.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!((done["completed_tasks"].as_u64(), done["skipped_tasks"].as_u64()), (Some(3), Some(0)), "{done}");
    assert!(done.get("paused_until").is_none(), "no pause once it ended: {done}");
    assert_eq!(second.wait_task("other", 30.0).await["status"], "completed");
    let b = first.ok("get_status", json!({ "task": "b" })).await;
    assert_eq!((b["attempt"].as_u64(), b["result"].as_str()), (Some(1), Some("b done")), "{b}");
    let runs = starts_of(&env, "b ");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let session = runs[0]["session"].as_str().expect("session");
    assert_eq!(runs[1]["resume"], session, "the second run resumed the first one's session: {runs:?}");
    assert!(runs[1]["at"].as_f64().expect("at") * 1000.0 >= until as f64, "not before the pause ended");
    let history = event_details(&env, b["task_id"].as_i64().expect("id"), "usage_limited");
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].starts_with("usage limit (five_hour) until "), "{history:?}");
    // Paused once and resumed once, for both processes together.
    eventually(10.0, "the resume announced", || (sounds_for(&feedback, "work_resumed") == 1).then_some(())).await;
    assert_eq!(sounds_for(&feedback, "work_paused"), 1);
    first.stop().await;
    second.stop().await;
    assert_eq!(sounds_for(&feedback, "work_resumed"), 1);
}

#[tokio::test]
async fn inspect_resume_lifts_a_long_pause_and_every_view_shows_it() {
    let env = Env::new();
    let client = env.server().await;
    client.create("long", "long @usage-limit=3600,long @result=after the pause", json!({})).await;
    let status = paused_status(&client, "long").await;
    let until = ms(&status["paused_until"]);
    assert!(until > now_ms() + 3_500_000, "about an hour: {status}");
    // The resources of the task and its orchestration say so too.
    for uri in [
        format!("claude-worker://tasks/{}", status["task_id"]),
        format!("claude-worker://orchestrations/{}", status["orchestration_id"]),
    ] {
        let read = client
            .service
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
            .await
            .unwrap_or_else(|e| panic!("read {uri}: {e}"));
        let rmcp::model::ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
            panic!("{uri}: {read:?}")
        };
        let resource: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(resource["paused_until"], status["paused_until"], "{uri}: {resource}");
    }
    // The inspect CLI's views and doctor.
    for args in [&["status", "long"][..], &["list"], &["list-orchestrations"]] {
        let out = env.inspect(args).await;
        let shown = text(&out.stdout);
        assert!(shown.contains("paused: 5-hour usage limit until"), "{args:?}: {shown}");
        assert!(shown.contains("claude-worker-inspect resume"), "{args:?}: {shown}");
    }
    let doctor = text(&env.inspect(&["doctor"]).await.stdout);
    assert!(doctor.contains("paused: 5-hour usage limit until"), "{doctor}");
    // The live view, once, piped: its first lines.
    let mut watch = env.command(crate::harness::INSPECT);
    watch.args(["watch", "long"]).stdout(std::process::Stdio::piped());
    let mut child = watch.spawn().expect("watch");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("paused: 5-hour usage limit until") {
            let n = stdout.read(&mut buf).await.expect("read");
            assert!(n > 0, "watch ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("watch shows the pause");
    // Try now.
    let out = env.inspect(&["resume"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("resumed: the 5-hour usage-limit pause until"), "{}", text(&out.stdout));
    let done = client.wait_task("long", 30.0).await;
    assert_eq!((done["status"].as_str(), done["result"].as_str()), (Some("completed"), Some("after the pause")));
    assert_eq!(done["attempt"], 1, "{done}");
    let runs = starts_of(&env, "long ");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1]["resume"], runs[0]["session"], "{runs:?}");
    // The live view saw it through.
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("watch ends").expect("wait");
    assert!(output.success());
    let again = env.inspect(&["resume", "--json"]).await;
    let value: Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(value["resumed"], false, "{value}");
    let doctor = text(&env.inspect(&["doctor"]).await.stdout);
    assert!(doctor.contains("not paused (the last refusal, 5-hour"), "{doctor}");
    client.stop().await;
}

#[tokio::test]
async fn odd_reset_times_end_sane() {
    let env = Env::new();
    let client = env.server().await;
    // Years ahead: capped at 8 days.
    client.create("years", "years @usage-limit=315360000,years @result=ok", json!({})).await;
    let status = paused_status(&client, "years").await;
    let wait = ms(&status["paused_until"]) - now_ms();
    let eight_days = 8 * 86_400_000;
    assert!(wait > eight_days - 60_000 && wait <= eight_days + 10_000, "{wait} ms: {status}");
    env.inspect(&["resume"]).await;
    assert_eq!(client.wait_task("years", 30.0).await["status"], "completed");
    // No reset time nor kind (the message still says it is a usage limit): a short default wait.
    client.create("bare", "bare @usage-limit=none,bare @result=ok", json!({})).await;
    let status = paused_status(&client, "bare").await;
    let wait = ms(&status["paused_until"]) - now_ms();
    assert!((240_000..=320_000).contains(&wait), "about five minutes: {wait} ms");
    assert!(status["paused_reason"].as_str().expect("reason").contains("5-hour usage limit"), "{status}");
    env.inspect(&["resume"]).await;
    assert_eq!(client.wait_task("bare", 30.0).await["status"], "completed");
    // In the past: a few seconds, then on by itself.
    client.create("past", "past @usage-limit=-86400,past @result=ok", json!({})).await;
    let status = paused_status(&client, "past").await;
    let wait = ms(&status["paused_until"]) - now_ms();
    assert!(wait <= 10_000, "a few seconds: {wait} ms");
    let done = client.wait_task("past", 30.0).await;
    assert_eq!((done["status"].as_str(), done["attempt"].as_u64()), (Some("completed"), Some(1)), "{done}");
    client.stop().await;
}

#[tokio::test]
async fn an_api_key_429_stays_an_ordinary_retry_and_a_warning_shows() {
    let env = Env::new();
    let client = env.server().await;
    client.create("keyed", "keyed @api-key-429", json!({ "max_attempts": 2 })).await;
    let status = client.wait_task("keyed", 30.0).await;
    assert_eq!((status["status"].as_str(), status["attempt"].as_u64()), (Some("failed"), Some(2)), "{status}");
    assert_eq!(status["error"]["kind"], "rate_limited", "{status}");
    assert!(status.get("paused_until").is_none(), "{status}");
    assert_eq!(env.sql_count("SELECT count(*) FROM usage_limit WHERE seen_at IS NOT NULL"), 0, "no pause recorded");
    // A warning that the limit is near: the run completes, and the warning is kept and shown.
    client.create("near", "near @usage-warning=3600", json!({})).await;
    assert_eq!(client.wait_task("near", 30.0).await["status"], "completed");
    let doctor = text(&env.inspect(&["doctor"]).await.stdout);
    assert!(doctor.contains("usage: 5-hour limit 92% used (warned at 90%), resets"), "{doctor}");
    let list = text(&env.inspect(&["list"]).await.stdout);
    assert!(list.contains("usage: 5-hour limit 92% used"), "{list}");
    assert!(!list.contains("paused:"), "{list}");
    client.stop().await;
}
