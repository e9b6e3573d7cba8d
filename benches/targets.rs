//! The performance targets of issue 12, measured against the physical limit in the same run:
//! `cargo bench --bench targets`.
//!
//! It writes its own minimal fake `claude` (a shell script that reads its stdin and prints the
//! recorded success output), drives the release `claude-worker` over real stdio as an MCP client
//! does, spawns the same fake directly in the same shapes and with the same parallelism (the
//! spawn-only limit), and prints one table: scenario, figure, target, limit, ratio. It asserts
//! nothing; `tests/it/scaling.rs` holds a fast, generous check for CI.
//!
//! Environment:
//! - `CLAUDE_WORKER_BENCH_SIZES`: the big graphs' sizes (layers of 99 plus a join, cap 100),
//!   default `1000,10000`; `1000,10000,100000` for the full table (about 15 minutes).
//! - `CLAUDE_WORKER_BENCH_STORED`: tasks stored for the read scenarios, default 100000.
//! - `CLAUDE_WORKER_BENCH_ONLY`: a comma-separated subset of
//!   `small,wide,create,graphs,stored,isolation,dashboard` (the dashboard's rows drive a
//!   headless Chromium through `chromedriver` when there is one).
//! - `CLAUDE_WORKER_BENCH_BIN`: another `claude-worker` binary to drive (an older build, for a
//!   before/after comparison).
//! - `CLAUDE_WORKER_BENCH_CSV`: a file to which the big graphs' rows are appended as CSV.
//! - `CLAUDE_WORKER_BENCH_REAL_CLI`: the real `claude` program (`npm install
//!   @anthropic-ai/claude-code`), to measure its own start (spawn to its `init` event, in a
//!   small repository, with an empty home: not logged in, so no request leaves the machine). The
//!   isolation rows then compare what a worktree adds with a no-op task's whole start.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

#[path = "targets/dashboard.rs"]
mod dashboard;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

const RELEASE: &str = env!("CARGO_BIN_EXE_claude-worker");
const SUCCESS: &str = include_str!("../tests/fixtures/success-text.jsonl");
/// What the Python tool stores per task (5.5 MiB for a 10,000-task graph, measured in issue 12).
const PYTHON_DB_BYTES_PER_TASK: f64 = 5.5 * 1024.0 * 1024.0 / 10_000.0;
const RUNS: usize = 5;

#[derive(Clone)]
struct Bench;

impl ClientHandler for Bench {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bench", "0.1"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

type Client = RunningService<RoleClient, Bench>;

/// One server process over stdio, with its own home.
struct Server {
    client: Client,
    pid: u32,
    home: PathBuf,
}

struct Env {
    dir: tempfile::TempDir,
    claude: PathBuf,
    work: PathBuf,
    bin: PathBuf,
    ticks_per_second: f64,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work");
        let output = dir.path().join("success.jsonl");
        std::fs::write(&output, SUCCESS).expect("write output");
        let claude = dir.path().join("claude");
        std::fs::write(&claude, format!("#!/bin/sh\ncat > /dev/null\nexec cat '{}'\n", output.display()))
            .expect("write fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = std::env::var_os("CLAUDE_WORKER_BENCH_BIN").map_or_else(|| PathBuf::from(RELEASE), PathBuf::from);
        let ticks_per_second =
            nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |t| t as f64);
        Env { dir, claude, work, bin, ticks_per_second }
    }

    fn command(&self, home: &Path, cap: u32) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .current_dir(&self.work)
            .env("HOME", home)
            .env("CLAUDE_WORKER_HOME", home)
            .env_remove("CLAUDE_WORKER_DB")
            .env_remove("CLAUDE_WORKER_LOG_DIR")
            .env("CLAUDE_WORKER_CLAUDE_BIN", &self.claude)
            .env("CLAUDE_WORKER_MAX_CONCURRENT", cap.to_string())
            .env("MAX_TASKS_PER_ORCHESTRATION", "200000")
            .env("CLAUDE_WORKER_ENABLE_SOUNDS", "false")
            .env("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "false")
            .env("CLAUDE_WORKER_DETACH_ON_EXIT", "false")
            .stderr(Stdio::null());
        command
    }

    async fn start(&self, name: &str, cap: u32) -> Server {
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).expect("home");
        self.start_in(home, cap).await
    }

    async fn start_in(&self, home: PathBuf, cap: u32) -> Server {
        let transport = TokioChildProcess::new(self.command(&home, cap)).expect("spawn server");
        let pid = transport.id().expect("server pid");
        let client = Bench.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");
        Server { client, pid, home }
    }

    fn cpu_seconds(&self, pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        // utime and stime are fields 14 and 15; after the ")" they are at 11 and 12.
        let ticks = fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks as f64 / self.ticks_per_second
    }
}

/// `VmHWM` (peak) or `VmRSS` (now) of a process, in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Bytes on disk under `dir`: (the database with its WAL, everything else: the logs).
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut db, mut other) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with("tasks.db") {
                db += meta.blocks() * 512;
            } else {
                other += meta.blocks() * 512;
            }
        }
    }
    (db, other)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(index).copied().unwrap_or(f64::NAN)
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let result = client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().cloned().expect("object")),
        )
        .await
        .expect("call");
    assert_ne!(result.is_error, Some(true), "{tool}: {:?}", result.content);
    result.structured_content.expect("structured")
}

/// A graph: each task's dependencies, by index (always earlier tasks).
type Graph = Vec<Vec<usize>>;

/// `layers` layers of `width`, each task depending on the whole layer before.
fn full_layers(layers: usize, width: usize) -> Graph {
    (0..layers * width)
        .map(|i| {
            let layer = i / width;
            if layer == 0 { Vec::new() } else { ((layer - 1) * width..layer * width).collect() }
        })
        .collect()
}

/// `n` tasks: layers of 99, each task depending on one task of the layer before, and a final
/// task depending on the whole last layer (the shape of issue 12).
fn layers_of_99(n: usize) -> Graph {
    let mut graph: Graph = Vec::with_capacity(n);
    let mut previous: Vec<usize> = Vec::new();
    let mut i = 0;
    while i + 1 < n {
        let mut current = Vec::new();
        for k in 0..99.min(n - 1 - i) {
            graph.push(if previous.is_empty() { Vec::new() } else { vec![previous[k % previous.len()]] });
            current.push(i);
            i += 1;
        }
        previous = current;
    }
    graph.push(previous);
    graph
}

fn graph_tasks(graph: &[Vec<usize>], prefix: &str) -> Vec<Value> {
    graph
        .iter()
        .enumerate()
        .map(|(i, deps)| {
            let depends_on: Vec<String> = deps.iter().map(|d| format!("{prefix}{d}")).collect();
            json!({ "identifier": format!("{prefix}{i}"), "execution_prompt": "x", "depends_on": depends_on })
        })
        .collect()
}

/// The spawn-only limit: the fake spawned directly in the graph's shape, at most `cap` at once,
/// each as soon as its dependencies exited. Returns the wall time and, for every task with
/// dependencies, the milliseconds from its last dependency's exit to its own spawn.
fn spawn_only(env: &Env, graph: &[Vec<usize>], cap: usize) -> (Duration, Vec<f64>) {
    struct State {
        ready: VecDeque<usize>,
        waiting_on: Vec<usize>,
        done: usize,
        started: Vec<Option<Instant>>,
        ended: Vec<Option<Instant>>,
    }
    let n = graph.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, deps) in graph.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let state = Arc::new((
        Mutex::new(State {
            ready: (0..n).filter(|&i| graph[i].is_empty()).collect(),
            waiting_on: graph.iter().map(Vec::len).collect(),
            done: 0,
            started: vec![None; n],
            ended: vec![None; n],
        }),
        Condvar::new(),
    ));
    let dependents = Arc::new(dependents);
    let start = Instant::now();
    let threads: Vec<_> = (0..cap.min(n))
        .map(|_| {
            let state = Arc::clone(&state);
            let dependents = Arc::clone(&dependents);
            let claude = env.claude.clone();
            let work = env.work.clone();
            std::thread::spawn(move || {
                loop {
                    let task = {
                        let (lock, ready) = &*state;
                        let mut s = lock.lock().expect("lock");
                        loop {
                            if let Some(t) = s.ready.pop_front() {
                                break Some(t);
                            }
                            if s.done == n {
                                break None;
                            }
                            s = ready.wait(s).expect("wait");
                        }
                    };
                    let Some(task) = task else { return };
                    let mut child = std::process::Command::new(&claude)
                        .current_dir(&work)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("spawn");
                    let started = Instant::now();
                    drop(child.stdin.take());
                    child.wait_with_output().expect("wait");
                    let ended = Instant::now();
                    let (lock, ready) = &*state;
                    let mut s = lock.lock().expect("lock");
                    s.started[task] = Some(started);
                    s.ended[task] = Some(ended);
                    s.done += 1;
                    for &d in &dependents[task] {
                        s.waiting_on[d] -= 1;
                        if s.waiting_on[d] == 0 {
                            s.ready.push_back(d);
                        }
                    }
                    ready.notify_all();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let elapsed = start.elapsed();
    let s = state.0.lock().expect("lock");
    let latencies = graph
        .iter()
        .enumerate()
        .filter(|(_, deps)| !deps.is_empty())
        .filter_map(|(i, deps)| {
            let last = deps.iter().filter_map(|&d| s.ended[d]).max()?;
            Some(s.started[i]?.saturating_duration_since(last).as_secs_f64() * 1000.0)
        })
        .collect();
    (elapsed, latencies)
}

/// What running one graph through claude-worker cost.
struct GraphRun {
    accepted: Duration,
    total: Duration,
    cpu: f64,
    orchestration_id: i64,
}

async fn run_graph(env: &Env, server: &Server, graph: &[Vec<usize>], prefix: &str) -> GraphRun {
    let tasks = graph_tasks(graph, prefix);
    let cpu_before = env.cpu_seconds(server.pid);
    let start = Instant::now();
    let created = call(&server.client, "create_orchestration", json!({ "name": prefix, "tasks": tasks })).await;
    let accepted = start.elapsed();
    let id = created["orchestration_id"].as_i64().expect("id");
    loop {
        let done = call(&server.client, "wait", json!({ "orchestration_id": id, "timeout_seconds": 600 })).await;
        if done["timed_out"] != json!(true) && done["status"] != "running" && done["status"] != "pending" {
            assert_eq!(done["status"], "completed", "{done}");
            break;
        }
    }
    let total = start.elapsed();
    GraphRun { accepted, total, cpu: env.cpu_seconds(server.pid) - cpu_before, orchestration_id: id }
}

/// Milliseconds from a task's last dependency's completion to its start, from the stored events.
fn dependency_latencies(home: &Path, orchestration_id: i64) -> Vec<f64> {
    let conn = rusqlite::Connection::open_with_flags(home.join("tasks.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT s.at - (SELECT max(c.at) FROM task_dependencies d JOIN task_events c ON c.task_id = d.depends_on
                           WHERE d.task_id = s.task_id AND c.kind = 'completed')
             FROM task_events s JOIN tasks t ON t.task_id = s.task_id
             WHERE s.kind = 'started' AND t.orchestration_id = ?1
               AND EXISTS (SELECT 1 FROM task_dependencies d WHERE d.task_id = s.task_id)",
        )
        .expect("prepare");
    stmt.query_map([orchestration_id], |r| r.get::<_, i64>(0)).expect("query").map(|v| v.expect("row") as f64).collect()
}

/// One line of the table.
struct Row {
    scenario: String,
    figure: String,
    target: String,
    limit: String,
    ratio: String,
}

fn row(
    scenario: impl Into<String>,
    figure: impl Into<String>,
    target: &str,
    limit: impl Into<String>,
    ratio: impl Into<String>,
) -> Row {
    Row {
        scenario: scenario.into(),
        figure: figure.into(),
        target: target.to_owned(),
        limit: limit.into(),
        ratio: ratio.into(),
    }
}

fn ms(d: f64) -> String {
    if d >= 1000.0 { format!("{:.2} s", d / 1000.0) } else { format!("{d:.1} ms") }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs git in `dir` with a fixed identity and none of the user's configuration.
fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

/// A repository of `files` small files in directories of 100, committed.
fn repository(dir: &Path, files: usize) -> PathBuf {
    std::fs::create_dir_all(dir).expect("repo");
    git(dir, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let sub = dir.join(format!("d{}", i / 100));
        std::fs::create_dir_all(&sub).expect("dir");
        std::fs::write(sub.join(format!("f{i}.txt")), format!("file {i}\n").repeat(5)).expect("file");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "files"]);
    dir.to_path_buf()
}

/// The milliseconds from each task's creation to its start (its CLI spawned), from the events.
fn start_delays(home: &Path, orchestration_id: Option<i64>) -> Vec<f64> {
    let conn = rusqlite::Connection::open_with_flags(home.join("tasks.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("db");
    let mut stmt = conn
        .prepare(
            "SELECT s.at - c.at FROM task_events s JOIN task_events c ON c.task_id = s.task_id AND c.kind = 'created'
             JOIN tasks t ON t.task_id = s.task_id
             WHERE s.kind = 'started' AND (?1 IS NULL OR t.orchestration_id = ?1)",
        )
        .expect("prepare");
    stmt.query_map([orchestration_id], |r| r.get::<_, i64>(0)).expect("query").map(|v| v.expect("row") as f64).collect()
}

/// The real CLI's own start: the median time from its spawn to its first line (the `init`
/// event) in a small repository, with an empty home (not logged in: it stops there, offline).
fn real_cli_start(program: &Path, repo: &Path, scratch: &Path) -> f64 {
    use std::io::BufRead;
    let home = scratch.join("real-cli-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut child = std::process::Command::new(program)
            .args(["-p", "--output-format", "stream-json", "--verbose", "say hi"])
            .current_dir(repo)
            .env("HOME", &home)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("CLAUDECODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the real CLI");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("read");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
        assert!(first.contains("\"init\""), "the real CLI's first line is its init event: {first}");
    }
    median(&times)
}

/// What isolation adds to a task's start: making its worktree (a small repository and one of
/// 10,000 files), and merging three dependencies' results for a dependent. The fake CLI used here
/// writes one file, so that results differ and merges are real.
async fn isolation_rows(env: &Env) -> Vec<Row> {
    let editing = env.dir.path().join("claude-edit");
    std::fs::write(
        &editing,
        format!(
            "#!/bin/sh\ncat > /dev/null\necho $$ > \"edit-$$.txt\"\nexec cat '{}'\n",
            env.dir.path().join("success.jsonl").display()
        ),
    )
    .expect("write fake");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&editing, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut rows = Vec::new();
    let mut base = None;
    let cli_start = std::env::var_os("CLAUDE_WORKER_BENCH_REAL_CLI").map(|program| {
        let repo = repository(&env.dir.path().join("repo-real-cli"), 10);
        let start = real_cli_start(Path::new(&program), &repo, env.dir.path());
        rows.push(row("real CLI: spawn -> its init event, small repository (p50)", ms(start), "", "", ""));
        start
    });
    for (label, files) in [("small repository (10 files)", 10), ("10,000 files", 10_000)] {
        let repo = repository(&env.dir.path().join(format!("repo-{files}")), files);
        // "worktree, no spares": every task's worktree made from scratch, as the first task on a
        // repository has it (CLAUDE_WORKER_SPARE_WORKTREES=0).
        for variant in ["none", "worktree, no spares", "worktree"] {
            let isolation = if variant == "none" { "none" } else { "worktree" };
            let home = env.dir.path().join(format!("iso-{files}-{}", variant.replace([',', ' '], "")));
            std::fs::create_dir_all(&home).expect("home");
            let mut command = env.command(&home, 4);
            command.env("CLAUDE_WORKER_CLAUDE_BIN", &editing).current_dir(&repo);
            if variant == "worktree, no spares" {
                command.env("CLAUDE_WORKER_SPARE_WORKTREES", "0");
            }
            let transport = TokioChildProcess::new(command).expect("spawn server");
            let client =
                Bench.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");
            let server = Server { client, pid: 0, home };
            // Single no-op tasks, one after the other: creation to start.
            for i in 0..10 {
                let created = call(
                    &server.client,
                    "create_task",
                    json!({ "task_identifier": format!("t{i}"), "execution_prompt": "x", "isolation": isolation,
                            "working_directory": repo.display().to_string() }),
                )
                .await;
                let id = created["task_id"].as_i64().expect("id");
                call(&server.client, "wait", json!({ "task": format!("#{id}"), "timeout_seconds": 120 })).await;
            }
            let start = median(&start_delays(&server.home, None));
            // Three parallel tasks and their dependent: the dependent's start after the last.
            let tasks = json!([
                { "identifier": "a", "execution_prompt": "x" },
                { "identifier": "b", "execution_prompt": "x" },
                { "identifier": "c", "execution_prompt": "x" },
                { "identifier": "d", "execution_prompt": "x", "depends_on": ["a", "b", "c"] },
            ]);
            let mut latencies = Vec::new();
            for round in 0..5 {
                let created = call(
                    &server.client,
                    "create_orchestration",
                    json!({ "name": format!("merge{round}"), "isolation": isolation, "tasks": tasks }),
                )
                .await;
                let id = created["orchestration_id"].as_i64().expect("id");
                call(&server.client, "wait", json!({ "orchestration_id": id, "timeout_seconds": 120 })).await;
                latencies.extend(dependency_latencies(&server.home, id));
            }
            let merge = median(&latencies);
            let _ = server.client.cancel().await;
            if isolation == "none" && files == 10 {
                base = Some((start, merge));
            }
            let (target, start_ratio, merge_ratio) = match (isolation, base) {
                ("worktree", Some((noop, noop_merge))) => {
                    // A no-op task's whole start: claude-worker's, and the CLI's own when measured.
                    let task_start = noop + cli_start.unwrap_or(0.0);
                    let share = |added: f64| {
                        format!("+{} = {:.0}% of {}", ms(added), added / task_start * 100.0, ms(task_start))
                    };
                    ("<= 10% of a no-op task's start", share(start - noop), share(merge - noop_merge))
                }
                _ => ("", String::new(), String::new()),
            };
            rows.push(row(
                format!("isolation {variant}, {label}: creation -> start (p50)"),
                ms(start),
                target,
                "",
                start_ratio,
            ));
            rows.push(row("  dependent of 3: dependency end -> start (p50)", ms(merge), target, "", merge_ratio));
        }
    }
    rows
}

fn wanted(only: &Option<Vec<String>>, what: &str) -> bool {
    only.as_ref().is_none_or(|o| o.iter().any(|w| w == what))
}

#[tokio::main]
async fn main() {
    let env = Env::new();
    let only: Option<Vec<String>> =
        std::env::var("CLAUDE_WORKER_BENCH_ONLY").ok().map(|s| s.split(',').map(|w| w.trim().to_owned()).collect());
    let sizes: Vec<usize> = std::env::var("CLAUDE_WORKER_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .map(|s| s.trim().replace('_', "").parse().expect("CLAUDE_WORKER_BENCH_SIZES: numbers"))
        .collect();
    let stored: usize = std::env::var("CLAUDE_WORKER_BENCH_STORED")
        .map_or(100_000, |s| s.trim().replace('_', "").parse().expect("CLAUDE_WORKER_BENCH_STORED: a number"));
    let mut rows = Vec::new();
    eprintln!("driving {}", env.bin.display());

    if wanted(&only, "small") {
        eprintln!("20-task graph, 5 layers of 4, cap 4 ({RUNS} runs, interleaved with the limit)");
        let server = env.start("small", 4).await;
        let graph = full_layers(5, 4);
        run_graph(&env, &server, &graph, "warmup").await;
        let (mut ours, mut limit, mut our_lat, mut limit_lat) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let (elapsed, lat) = spawn_only(&env, &graph, 4);
            limit.push(elapsed.as_secs_f64() * 1000.0);
            limit_lat.extend(lat);
            let r = run_graph(&env, &server, &graph, &format!("small{run}-")).await;
            ours.push(r.total.as_secs_f64() * 1000.0);
            our_lat.extend(dependency_latencies(&server.home, r.orchestration_id));
        }
        let (o, l) = (median(&ours), median(&limit));
        rows.push(row("20-task graph, 5 layers of 4, cap 4 (p50)", ms(o), "<= 1.25x", ms(l), format!("x{:.2}", o / l)));
        for (name, p, target) in [("p50", 0.5, 1.0), ("p99", 0.99, 5.0)] {
            let (o, l) = (percentile(&our_lat, p), percentile(&limit_lat, p));
            rows.push(row(
                format!("dependency end -> dependent start, {name} ({} starts)", our_lat.len()),
                ms(o),
                &format!("<= limit + {target} ms"),
                ms(l),
                format!("{:+.1} ms", o - l),
            ));
        }
        let _ = server.client.cancel().await;
    }

    if wanted(&only, "wide") {
        eprintln!("200 independent no-op tasks, cap 20 ({RUNS} runs)");
        let server = env.start("wide", 20).await;
        let graph: Graph = vec![Vec::new(); 200];
        run_graph(&env, &server, &full_layers(1, 20), "warmup").await;
        let (mut ours, mut limit, mut accept) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            limit.push(spawn_only(&env, &graph, 20).0.as_secs_f64() * 1000.0);
            let r = run_graph(&env, &server, &graph, &format!("wide{run}-")).await;
            ours.push(r.total.as_secs_f64() * 1000.0);
            accept.push(r.accepted.as_secs_f64() * 1000.0);
        }
        let (o, l) = (median(&ours), median(&limit));
        rows.push(row("200 independent no-op tasks, cap 20 (p50)", ms(o), "<= 1.15x", ms(l), format!("x{:.2}", o / l)));
        rows.push(row("  accepting them (create_orchestration, p50)", ms(median(&accept)), "<= 20 ms", "", ""));
        let _ = server.client.cancel().await;
    }

    if wanted(&only, "create") {
        eprintln!("create_task round trips, 1,000 in sequence; then the idle server");
        let server = env.start("create", 4).await;
        let mut times = Vec::new();
        for i in 0..1000 {
            let start = Instant::now();
            call(
                &server.client,
                "create_task",
                json!({ "task_identifier": format!("c{i}"), "execution_prompt": "x", "wait_after_dependencies": 86400 }),
            )
            .await;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        rows.push(row(
            "create_task round trip over stdio, p50 (1,000)",
            format!("{:.2} ms", median(&times)),
            "<= 1 ms",
            "",
            "",
        ));
        rows.push(row(
            "create_task round trip over stdio, p99",
            format!("{:.2} ms", percentile(&times, 0.99)),
            "<= 3 ms",
            "",
            "",
        ));
        // Idle: once the follow-up checks after the last write are over (15 s after it).
        tokio::time::sleep(Duration::from_secs(16)).await;
        let before = env.cpu_seconds(server.pid);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = env.cpu_seconds(server.pid) - before;
        rows.push(row(
            "idle server: CPU over 5 s, 16 s after the last write",
            format!("{:.0} ms", idle * 1000.0),
            "0",
            "",
            "",
        ));
        rows.push(row(
            "idle server: RSS (1,000 tasks stored)",
            format!("{:.1} MiB", memory_mib(server.pid, "VmRSS:")),
            "<= 20 MiB",
            "",
            "",
        ));
        let _ = server.client.cancel().await;
    }

    if wanted(&only, "graphs") {
        let mut base: Option<(f64, f64)> = None;
        for &n in &sizes {
            eprintln!("{}-task graph, layers of 99 and a join, cap 100", thousands(n));
            let server = env.start(&format!("graph{n}"), 100).await;
            let graph = layers_of_99(n);
            let r = run_graph(&env, &server, &graph, "t").await;
            let peak = memory_mib(server.pid, "VmHWM:");
            let lat = dependency_latencies(&server.home, r.orchestration_id);
            let _ = server.client.cancel().await;
            let (db, logs) = disk_usage(&server.home);
            let limit = spawn_only(&env, &graph, 100).0;
            let wall = r.total.as_secs_f64();
            let cpu_per_task = r.cpu * 1000.0 / n as f64;
            let label = thousands(n);
            rows.push(row(
                format!("{label}-task graph, cap 100: wall"),
                ms(wall * 1000.0),
                "<= 1.3x",
                ms(limit.as_secs_f64() * 1000.0),
                format!("x{:.2}", wall / limit.as_secs_f64()),
            ));
            let (cpu_ratio, wall_ratio) = match base {
                None => {
                    base = Some((cpu_per_task, wall / n as f64));
                    (String::new(), String::new())
                }
                Some((cpu0, wall0)) => (
                    format!("x{:.2} of {}", cpu_per_task / cpu0, thousands(sizes[0])),
                    format!("x{:.2} of {}", wall / n as f64 / wall0, thousands(sizes[0])),
                ),
            };
            rows.push(row(
                "  server CPU a task",
                format!("{cpu_per_task:.2} ms"),
                "<= 1.2x (1.3x at 100,000) of 1,000",
                "",
                cpu_ratio,
            ));
            rows.push(row(
                "  wall time a task",
                format!("{:.2} ms", wall * 1000.0 / n as f64),
                "<= 1.3x of 1,000",
                "",
                wall_ratio,
            ));
            rows.push(row(
                "  dependency end -> start p50 / p99",
                format!("{:.1} / {:.1} ms", percentile(&lat, 0.5), percentile(&lat, 0.99)),
                "",
                "",
                "",
            ));
            rows.push(row("  peak RSS", format!("{peak:.1} MiB"), "<= 64 MiB", "", ""));
            rows.push(row(
                "  database (with WAL)",
                format!("{:.1} MiB, {:.0} B a task", db as f64 / 1048576.0, db as f64 / n as f64),
                "<= 2x Python's 577 B a task",
                "",
                format!("x{:.2} of Python", db as f64 / n as f64 / PYTHON_DB_BYTES_PER_TASK),
            ));
            rows.push(row(
                "  logs on disk",
                format!("{:.1} MiB, {:.0} B a task", logs as f64 / 1048576.0, logs as f64 / n as f64),
                "proportionate",
                "",
                "",
            ));
            if let Ok(path) = std::env::var("CLAUDE_WORKER_BENCH_CSV") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("csv");
                writeln!(
                    f,
                    "{},{n},{wall:.3},{:.3},{:.4},{peak:.1},{db},{logs}",
                    env.bin.display(),
                    limit.as_secs_f64(),
                    cpu_per_task
                )
                .expect("csv");
            }
        }
    }

    if wanted(&only, "stored") {
        eprintln!("storing {} tasks (orchestrations of 1,000, cancelled)", thousands(stored));
        let server = env.start("stored", 100).await;
        let built = Instant::now();
        let mut made = 0;
        let mut batch_no = 0;
        while made < stored {
            let count = 1000.min(stored - made);
            let tasks: Vec<Value> = (0..count)
                .map(|i| json!({ "identifier": format!("s{batch_no}-{i}"), "execution_prompt": "x", "wait_after_dependencies": 86400 }))
                .collect();
            let created = call(
                &server.client,
                "create_orchestration",
                json!({ "name": format!("stored{batch_no}"), "tasks": tasks }),
            )
            .await;
            let id = created["orchestration_id"].as_i64().expect("id");
            call(&server.client, "cancel", json!({ "orchestration_id": id })).await;
            made += count;
            batch_no += 1;
        }
        eprintln!("  stored in {:.1} s", built.elapsed().as_secs_f64());
        let independent: Graph = vec![Vec::new(); 100];
        let hundred = run_graph(&env, &server, &independent, "hundred").await;
        let mut status = Vec::new();
        let mut list = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            call(&server.client, "get_status", json!({ "orchestration_id": hundred.orchestration_id })).await;
            status.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            call(&server.client, "list_orchestrations", json!({})).await;
            list.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        // wait wake-up: from the task's completion (its stored event) to wait's answer.
        let mut wakeups = Vec::new();
        let conn = rusqlite::Connection::open_with_flags(
            server.home.join("tasks.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("db");
        for i in 0..30 {
            let created = call(
                &server.client,
                "create_task",
                json!({ "task_identifier": format!("w{i}"), "execution_prompt": "x" }),
            )
            .await;
            let id = created["task_id"].as_i64().expect("task id");
            call(&server.client, "wait", json!({ "task": format!("#{id}"), "timeout_seconds": 60 })).await;
            let answered = epoch_ms();
            let completed: i64 = conn
                .query_row("SELECT max(at) FROM task_events WHERE task_id = ?1 AND kind = 'completed'", [id], |r| {
                    r.get(0)
                })
                .expect("completed");
            wakeups.push((answered - completed) as f64);
        }
        let label = thousands(stored);
        rows.push(row(
            format!("get_status of a 100-task orchestration, {label} stored (p50)"),
            format!("{:.2} ms", median(&status)),
            "<= 5 ms",
            "",
            "",
        ));
        rows.push(row(
            format!("list_orchestrations, {label} stored (p50)"),
            format!("{:.2} ms", median(&list)),
            "<= 5 ms",
            "",
            "",
        ));
        rows.push(row(
            format!("wait wake-up after completion, {label} stored (p50)"),
            format!("{:.1} ms", median(&wakeups)),
            "<= 5 ms",
            "",
            "",
        ));
        let _ = server.client.cancel().await;
        let (db, _) = disk_usage(&server.home);
        rows.push(row(
            format!("  database of {label} stored tasks"),
            format!("{:.1} MiB", db as f64 / 1048576.0),
            "",
            "",
            "",
        ));

        let mut cold = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let s = env.start_in(server.home.clone(), 4).await;
            s.client.list_all_tools().await.expect("tools/list");
            cold.push(start.elapsed().as_secs_f64() * 1000.0);
            let _ = s.client.cancel().await;
        }
        rows.push(row(
            format!("cold start to the first tools/list answer, {label} stored (p50)"),
            ms(median(&cold)),
            "<= 50 ms",
            "",
            "",
        ));
    }

    if wanted(&only, "isolation") {
        rows.extend(isolation_rows(&env).await);
    }

    if wanted(&only, "dashboard") {
        rows.extend(dashboard::rows(&env).await);
    }

    println!();
    println!("claude-worker against the spawn-only limit ({}; fake CLI that exits at once)", env.bin.display());
    let widths = [
        rows.iter().map(|r| r.scenario.len()).max().unwrap_or(0).max(8),
        rows.iter().map(|r| r.figure.len()).max().unwrap_or(0).max(6),
        rows.iter().map(|r| r.target.len()).max().unwrap_or(0).max(6),
        rows.iter().map(|r| r.limit.len()).max().unwrap_or(0).max(5),
        rows.iter().map(|r| r.ratio.len()).max().unwrap_or(0).max(5),
    ];
    let line = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        println!(
            "| {a:<w0$} | {b:>w1$} | {c:<w2$} | {d:>w3$} | {e:<w4$} |",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
    };
    line("scenario", "figure", "target", "limit", "ratio");
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(widths[0] + 2),
        "-".repeat(widths[1] + 2),
        "-".repeat(widths[2] + 2),
        "-".repeat(widths[3] + 2),
        "-".repeat(widths[4] + 2)
    );
    for r in &rows {
        line(&r.scenario, &r.figure, &r.target, &r.limit, &r.ratio);
    }
}
