//! The speed goals of claude-worker, measured (not asserted): run with `cargo bench --bench speed`.
//!
//! Against a fake `claude` that exits at once (a shell script printing the recorded success
//! output), it reports:
//! - the 20-task graph (5 layers of 4, each layer depending on the whole previous one) through
//!   claude-worker, against the time to spawn the same 20 processes in the same shape directly;
//! - how long after its last dependency completed a dependent task started (p50, p95);
//! - `create_task` round-trip time over MCP (p50, p95);
//! - CPU used by an idle server over a few seconds.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt};
use serde_json::{Value, json};

const SERVER: &str = env!("CARGO_BIN_EXE_claude-worker");

#[derive(Clone)]
struct Bench;

impl ClientHandler for Bench {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bench", "0.1"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

fn fake_claude(dir: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/success-text.jsonl");
    let path = dir.join("claude");
    std::fs::write(&path, format!("#!/bin/sh\ncat > /dev/null\nexec cat '{}'\n", fixture.display()))
        .expect("write fake");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(index).copied().unwrap_or(f64::NAN)
}

/// The 20 processes in the graph's shape, spawned directly: the floor claude-worker is held to.
fn baseline(claude: &Path, cwd: &Path) -> Duration {
    let start = Instant::now();
    for _layer in 0..5 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut child = std::process::Command::new(claude)
                    .current_dir(cwd)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn");
                drop(child.stdin.take());
                child
            })
            .collect();
        for child in children {
            child.wait_with_output().expect("wait");
        }
    }
    start.elapsed()
}

async fn call(client: &rmcp::service::RunningService<rmcp::RoleClient, Bench>, tool: &str, args: Value) -> Value {
    let result = client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().cloned().expect("object")),
        )
        .await
        .expect("call");
    assert_ne!(result.is_error, Some(true), "{tool}: {:?}", result.content);
    result.structured_content.expect("structured")
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15; after the ")" they are at 11 and 12.
    fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    let claude = fake_claude(dir.path());

    let mut command = tokio::process::Command::new(SERVER);
    command
        .current_dir(&work)
        .env("CLAUDE_WORKER_HOME", &home)
        .env("CLAUDE_WORKER_CLAUDE_BIN", &claude)
        .env("CLAUDE_WORKER_MAX_CONCURRENT", "4")
        .env("CLAUDE_WORKER_LOG_LEVEL", "info")
        // Hundreds of tasks must not beep at whoever runs the benchmark.
        .env("CLAUDE_WORKER_ENABLE_SOUNDS", "false")
        .env("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "false")
        // Each run leaves delayed tasks behind in a temporary database: no worker for them.
        .env("CLAUDE_WORKER_DETACH_ON_EXIT", "false");
    let transport = TokioChildProcess::new(command).expect("spawn server");
    let pid = transport.id().expect("server pid");
    let client = Bench.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");

    // Warm up: the first run pays for page cache and process start-up.
    call(&client, "create_task", json!({ "task_identifier": "warmup", "execution_prompt": "x" })).await;
    call(&client, "wait", json!({ "task": "warmup", "timeout_seconds": 30 })).await;

    let runs = 5;
    let cpu_before_graphs = cpu_ticks(pid);
    let mut graph_times = Vec::new();
    let mut baseline_times = Vec::new();
    for run in 0..runs {
        baseline_times.push(baseline(&claude, &work).as_secs_f64());
        let mut tasks = Vec::new();
        for layer in 0..5 {
            for i in 0..4 {
                let depends_on: Vec<String> =
                    if layer == 0 { vec![] } else { (0..4).map(|j| format!("r{run}l{}t{j}", layer - 1)).collect() };
                tasks.push(json!({ "identifier": format!("r{run}l{layer}t{i}"), "execution_prompt": "x", "depends_on": depends_on }));
            }
        }
        let start = Instant::now();
        let created = call(&client, "create_orchestration", json!({ "tasks": tasks })).await;
        let id = created["orchestration_id"].as_i64().expect("id");
        let done = call(&client, "wait", json!({ "orchestration_id": id, "timeout_seconds": 120 })).await;
        graph_times.push(start.elapsed().as_secs_f64());
        assert_eq!(done["status"], "completed");
    }

    let graph_cpu_ticks = cpu_ticks(pid) - cpu_before_graphs;

    // Dependent start latency, from the stored history.
    let conn = rusqlite::Connection::open(home.join("tasks.db")).expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT s.at - (SELECT max(c.at) FROM task_dependencies d JOIN task_events c ON c.task_id = d.depends_on
                           WHERE d.task_id = s.task_id AND c.kind = 'completed')
             FROM task_events s WHERE s.kind = 'started'
               AND EXISTS (SELECT 1 FROM task_dependencies d WHERE d.task_id = s.task_id)",
        )
        .expect("prepare");
    let latencies: Vec<f64> =
        stmt.query_map([], |r| r.get::<_, i64>(0)).expect("query").map(|v| v.expect("row") as f64).collect();

    // Where a task's time goes: claimed -> started (spawn), started -> completed (run and record).
    let phase = |from: &str, to: &str| -> Vec<f64> {
        let mut stmt = conn
            .prepare(
                "SELECT b.at - a.at FROM task_events a JOIN task_events b ON b.task_id = a.task_id
                 WHERE a.kind = ?1 AND b.kind = ?2",
            )
            .expect("prepare");
        stmt.query_map([from, to], |r| r.get::<_, i64>(0)).expect("query").map(|v| v.expect("row") as f64).collect()
    };
    let spawn_ms = phase("claimed", "started");
    let run_ms = phase("started", "completed");

    // create_task round trips, on tasks that wait a day so that nothing runs meanwhile.
    let mut create_ms = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        call(
            &client,
            "create_task",
            json!({ "task_identifier": format!("c{i}"), "execution_prompt": "x", "wait_after_dependencies": 86400 }),
        )
        .await;
        create_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }

    // Idle CPU, once the follow-up checks after the last write are over (the last comes 15 s
    // after it: see VERSION_CHECKS in src/executor.rs).
    tokio::time::sleep(Duration::from_secs(16)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_ticks = cpu_ticks(pid) - before;

    let graph = percentile(graph_times.clone(), 0.5);
    let floor = percentile(baseline_times.clone(), 0.5);
    println!("claude-worker speed ({runs} runs, fake CLI that exits at once)");
    println!(
        "  20-task graph, 5 layers of 4:  {:.1} ms (p50)   direct spawn of the same shape: {:.1} ms   ratio {:.2}x (goal <= 1.5x)",
        graph * 1000.0,
        floor * 1000.0,
        graph / floor
    );
    println!(
        "  dependent start after its last dependency: p50 {:.1} ms, p95 {:.1} ms over {} starts (goal p50 <= 5 ms)",
        percentile(latencies.clone(), 0.5),
        percentile(latencies.clone(), 0.95),
        latencies.len()
    );
    println!("  server CPU per task in the graphs: {:.2} ms", graph_cpu_ticks as f64 * 10.0 / f64::from(runs * 20));
    println!(
        "  per task: claimed -> started p50 {:.1} ms, started -> completed p50 {:.1} ms",
        percentile(spawn_ms, 0.5),
        percentile(run_ms, 0.5)
    );
    println!(
        "  create_task round trip over MCP: p50 {:.2} ms, p95 {:.2} ms over {} calls (goal p50 <= 2 ms)",
        percentile(create_ms.clone(), 0.5),
        percentile(create_ms.clone(), 0.95),
        create_ms.len()
    );
    println!("  idle server CPU over 5 s, 16 s after the last write: {idle_ticks} clock ticks (goal: 0)");
    let _ = client.cancel().await;
}
