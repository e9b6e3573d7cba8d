//! Cost that grows with the graph: a fast, generous check that the server's CPU per task stays
//! flat when an orchestration grows tenfold. The tight targets live in `cargo bench --bench
//! targets` (see docs/BENCHMARKS.md); this only catches cost per event that is proportional to
//! the graph (the counters recounted from every task on each change made n tasks cost n²).
//!
//! CPU time of the server process (utime + stime in `/proc/<pid>/stat`), not wall time: the
//! machine may be busy with other tests. The fake CLI is a shell script, not `fake_claude.py`:
//! thousands of Python starts would take the test minutes.

use serde_json::{Value, json};

use crate::harness::{Env, SERVER, eventually, make_executable, peak_memory_kib};

/// Layers of 99, each task depending on one task of the layer before, and a final join.
fn layers_of_99(n: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut previous: Vec<usize> = Vec::new();
    let mut i = 0;
    while i + 1 < n {
        let mut current = Vec::new();
        for k in 0..99.min(n - 1 - i) {
            let depends_on: Vec<String> =
                if previous.is_empty() { Vec::new() } else { vec![format!("t{}", previous[k % previous.len()])] };
            tasks.push(json!({ "identifier": format!("t{i}"), "execution_prompt": "x", "depends_on": depends_on }));
            current.push(i);
            i += 1;
        }
        previous = current;
    }
    let depends_on: Vec<String> = previous.iter().map(|p| format!("t{p}")).collect();
    tasks.push(json!({ "identifier": "join", "execution_prompt": "x", "depends_on": depends_on }));
    tasks
}

/// Server CPU seconds (user + system) of a process.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    ticks as f64 / per_second as f64
}

/// CPU a task of an `n`-task graph costs the server (a fresh one), in milliseconds.
async fn cpu_per_task(n: usize) -> f64 {
    let env = Env::new();
    let fake = env.work.parent().expect("root").join("bin").join("fast-claude");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/success-text.jsonl");
    std::fs::write(&fake, format!("#!/bin/sh\ncat > /dev/null\nexec cat '{}'\n", fixture.display())).expect("fake");
    make_executable(&fake);
    let env = env
        .set("CLAUDE_WORKER_CLAUDE_BIN", &fake.display().to_string())
        .set("CLAUDE_WORKER_MAX_CONCURRENT", "100")
        .set("MAX_TASKS_PER_ORCHESTRATION", "10000");
    let server = env.server().await;
    // Start-up and the first commit are not the graph's.
    server.create("warmup", "x", json!({})).await;
    server.wait_task("warmup", 30.0).await;
    let before = cpu_seconds(server.pid);
    let created = server.ok("create_orchestration", json!({ "name": "scale", "tasks": layers_of_99(n) })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = server.wait_orchestration(id, 300.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let cpu = cpu_seconds(server.pid) - before;
    server.stop().await;
    cpu * 1000.0 / n as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_per_task_stays_flat_as_the_graph_grows() {
    let small = cpu_per_task(200).await;
    let large = cpu_per_task(2000).await;
    eprintln!("server CPU a task: {small:.2} ms in a 200-task graph, {large:.2} ms in a 2,000-task graph");
    // Measured on the shared 2-core machine in a debug build: 9.25 and 10.83 ms (x1.17). A cost
    // proportional to the orchestration per event shows as the large graph's tasks costing
    // several times more. The bound is generous: the recount removed in d8d2318 would have cost
    // only about x1.35 at these sizes (from its release figures at 1,000 and 10,000 tasks in
    // docs/BENCHMARKS.md), so this catches gross growth; the harness measures the fine one.
    assert!(
        large <= 3.0 * small.max(0.5),
        "a task of a 2,000-task graph cost {large:.2} ms of server CPU, of a 200-task graph {small:.2} ms: \
         cost grows with the graph"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_graph_is_accepted_in_memory_proportionate_to_its_tasks() {
    const TASKS: usize = 30_000;
    let env = Env::new().set("MAX_TASKS_PER_ORCHESTRATION", &TASKS.to_string());
    let server = env.server().await;
    server.ok("list_tasks", json!({})).await;
    let before = peak_memory_kib(server.pid);
    // Nothing starts for a day: this measures the accepting, not the running.
    let mut tasks = layers_of_99(TASKS);
    for task in &mut tasks {
        task["wait_after_dependencies"] = json!(86400);
    }
    let request_bytes = serde_json::to_vec(&tasks).expect("json").len();
    let created = server.ok("create_orchestration", json!({ "name": "huge", "tasks": tasks })).await;
    assert_eq!(created["total_tasks"], TASKS, "{}", created["message"]);
    let grown = peak_memory_kib(server.pid).saturating_sub(before);
    let per_task = grown as f64 * 1024.0 / TASKS as f64;
    eprintln!(
        "accepting {TASKS} tasks ({} KiB of JSON) raised the server's peak by {} KiB: {per_task:.0} bytes a task",
        request_bytes / 1024,
        grown
    );
    // About 500 bytes a task in this debug build since the server runs on jemalloc with one
    // arena (session 10; 700 with glibc's arena a thread), and since the arguments of a
    // tools/call are read straight into typed inputs (session 9): 3,500 before, when rmcp first
    // built a serde_json tree of them and serde buffered it twice more. The bound is generous.
    assert!(
        per_task < 1100.0,
        "accepting a {TASKS}-task graph cost {per_task:.0} bytes of peak memory a task (the request is {} bytes a \
         task)",
        request_bytes / TASKS
    );
    // The global log says it of every task: 30,000 lines at once, through a queue of 8,192
    // (the logging thread waits when it is full; whether it ever fills here depends on the
    // writer's pace, so this checks the lines, not the waiting).
    let id = created["orchestration_id"].as_i64().expect("id");
    let global = env.home.join("claude-worker.log");
    let marker = format!("orchestration_id={id} ");
    let created_lines = || {
        let log = std::fs::read_to_string(&global).unwrap_or_default();
        log.lines().filter(|l| l.contains(&marker) && l.contains(" created")).count()
    };
    eventually(30.0, "every created line in the global log", || (created_lines() >= TASKS).then_some(())).await;
    assert_eq!(created_lines(), TASKS, "one line a task");
    server.stop().await;
}

/// The server runs on jemalloc with the settings that `.cargo/config.toml` builds into it (one
/// arena for every thread, small thread caches): what keeps a 100,000-task graph under 64 MiB. A
/// build that missed them would work, with a higher peak; this says so at once. jemalloc prints
/// its settings at exit when asked to through its environment.
#[test]
fn the_server_is_built_with_its_allocator_settings() {
    let out = std::process::Command::new(SERVER)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run the server");
    assert!(out.status.success(), "{out:?}");
    let stats = String::from_utf8_lossy(&out.stderr);
    for setting in ["opt.narenas: 1", "opt.tcache_max: 1024", "opt.dirty_decay_ms: 1000", "opt.muzzy_decay_ms: 0"] {
        assert!(
            stats.contains(setting),
            "jemalloc's statistics do not say {setting:?}: was the server built from this directory, \
             where .cargo/config.toml is read? {}",
            stats.chars().take(2000).collect::<String>()
        );
    }
}
