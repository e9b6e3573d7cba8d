//! Bad environments: each gets a clear error, the server stays alive for the next request where
//! it can run at all, and nothing is lost. The database: read-only, in a directory that cannot
//! be made, corrupt, full. What a task prints: a gibibyte, invalid UTF-8, one enormous line, a
//! CLI that closes its output and goes on. The CLI itself: missing, not executable.

use std::path::Path;

use serde_json::json;

use crate::harness::{Env, eventually};

/// The peak resident memory of a process (`VmHWM`), in KiB.
fn peak_memory_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test]
async fn a_task_that_prints_a_gibibyte_leaves_the_server_small_and_its_log_capped() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "2");
    let client = env.server().await;
    let started = std::time::Instant::now();
    client.create("flood", "flood @flood=1024", json!({})).await;
    let status = client.wait_task("flood", 300.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    let elapsed = started.elapsed();
    let peak = peak_memory_kib(client.pid);
    eprintln!("1 GiB of stream-json lines in {elapsed:.1?}: server peak memory {} MiB", peak / 1024);
    assert!(peak < 100 * 1024, "the server's peak memory is {peak} KiB");
    let detailed = status["detailed_log"].as_str().expect("path");
    let len = file_len(Path::new(detailed));
    assert!(len <= 2 * 1024 * 1024 + 4096, "the detailed log is capped: {len} bytes");
    let log = std::fs::read(detailed).expect("log");
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("\"subtype\":\"init\"") && text.contains("\"type\":\"result\""), "head and tail kept");
    let summary_path = status["summary_log"].as_str().expect("path").to_owned();
    let summary = std::fs::read_to_string(&summary_path).expect("summary");
    assert!(summary.len() < 2 * 1024 * 1024, "the summary log stays small too: {} bytes", summary.len());
    assert!(summary.contains("Bash: step 000000000"), "the first steps are summarised");
    assert!(summary.contains("more steps than the summary keeps"), "and the summary says where the rest is");
    client.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_the_output_does_not_disturb_the_run() {
    let env = Env::new();
    let client = env.server().await;
    client.create("mangled", "mangled @badutf8", json!({})).await;
    let status = client.wait_task("mangled", 30.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"], "bad \u{fffd} byte, then fine", "the bad byte is replaced, the rest kept");
    let log = std::fs::read(status["detailed_log"].as_str().expect("path")).expect("log");
    assert!(log.windows(4).any(|w| w == b"\xff\xfe n"), "the detailed log keeps the bytes as printed");
    let output = client.ok("get_task_output", json!({ "task": "mangled" })).await;
    assert_eq!(output["result"], status["result"], "{output}");
    client.stop().await;
}

#[tokio::test]
async fn one_enormous_line_is_cut_and_the_run_goes_on() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "1");
    let client = env.server().await;
    client.create("wide", "wide @longline=200 @result=after the long line", json!({})).await;
    let status = client.wait_task("wide", 120.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"], "after the long line");
    let peak = peak_memory_kib(client.pid);
    eprintln!("a line of 200 MiB: server peak memory {} MiB", peak / 1024);
    assert!(peak < 100 * 1024, "the server's peak memory is {peak} KiB");
    let detailed = Path::new(status["detailed_log"].as_str().expect("path")).to_owned();
    let len = file_len(&detailed);
    assert!(len <= 1024 * 1024 + 4096, "the detailed log is capped: {len} bytes");
    let log = String::from_utf8_lossy(&std::fs::read(&detailed).expect("log")).into_owned();
    assert!(log.contains("line cut") || log.contains("not kept"), "the cut is said");
    assert!(log.contains("after the long line"), "what follows the long line is logged");
    client.stop().await;
}

#[tokio::test]
async fn a_cli_that_closes_its_output_and_goes_on_ends_clearly() {
    let env = Env::new();
    let client = env.server().await;
    // It closes stdout, works on for a while, and exits without a result.
    client.create("quiet", "quiet @close-stdout=1.5", json!({})).await;
    // It closes both stdout and stderr and would go on for a minute: its timeout stops it.
    client.create("mute", "mute @close-output=60", json!({ "timeout_seconds": 2 })).await;
    let started = std::time::Instant::now();
    let quiet = client.wait_task("quiet", 30.0).await;
    assert_eq!(quiet["status"], "failed", "{quiet}");
    assert_eq!(quiet["error"]["kind"], "cli_error", "{quiet}");
    let message = quiet["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("without writing a result") && message.contains("closed its standard output"),
        "{message}"
    );
    let mute = client.wait_task("mute", 30.0).await;
    assert_eq!(mute["status"], "failed", "{mute}");
    assert_eq!(mute["error"]["kind"], "timeout", "{mute}");
    assert!(started.elapsed().as_secs_f64() < 15.0, "no hang beyond the timeout and the stop sequence");
    eventually(5.0, "the muted CLI to be gone", || {
        let ended = env.invocations().iter().filter(|v| v["event"] == "end").count();
        (ended == 2).then_some(())
    })
    .await;
    client.stop().await;
}

#[tokio::test]
async fn a_claude_binary_that_cannot_run_fails_the_task_clearly() {
    let env = Env::new();
    let root = env.home.parent().expect("root").to_owned();
    let not_executable = root.join("bin/claude-0644");
    std::fs::copy(root.join("bin/claude"), &not_executable).expect("copy");
    set_mode(&not_executable, 0o644);
    let bad_interpreter = root.join("bin/claude-bad-interpreter");
    std::fs::write(&bad_interpreter, "#!/nonexistent/python9\n").expect("write");
    set_mode(&bad_interpreter, 0o755);
    for (bin, kind, hint) in
        [(&not_executable, "claude_not_executable", "chmod +x"), (&bad_interpreter, "claude_not_found", "interpreter")]
    {
        let env = Env::new().set("CLAUDE_WORKER_CLAUDE_BIN", &bin.display().to_string());
        let client = env.server().await;
        client.create("cannot", "x", json!({})).await;
        let status = client.wait_task("cannot", 30.0).await;
        assert_eq!(status["status"], "failed", "{status}");
        assert_eq!(status["error"]["kind"], kind, "{status}");
        let message = status["error"]["message"].as_str().expect("message");
        assert!(message.contains(hint) && message.contains("CLAUDE_WORKER_CLAUDE_BIN"), "{message}");
        assert_eq!(status["attempt"], 1, "not retried");
        // The server is still there for the next request.
        client.ok("list_tasks", json!({})).await;
        client.stop().await;
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
