//! The terminal workflow with the real binary: `claude-worker run` (prompt, file, stdin,
//! options, `--watch`), `claude-worker orchestrate` (the seed's workflow file, `--wait`), the
//! background worker they start when no executor is alive, and Ctrl-C leaving the work running.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use crate::harness::{Env, SERVER, eventually, finished, no_executor_left, text};

#[tokio::test]
async fn run_queues_and_returns_at_once_while_a_server_runs_the_task() {
    let env = Env::new();
    let client = env.server().await;
    let output = finished(
        env.command(SERVER)
            .args(["run", "slow job @sleep=3", "--identifier", "slow", "--model", "opus"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("queued task #1 slow (pending) in orchestration 1"), "{stdout}");
    assert!(!text(&output.stderr).contains("background worker"), "a server is alive: no worker started");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'"), 0, "it did not wait");
    let done = client.wait_task("slow", 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let start = env.starts().into_iter().next().expect("ran");
    assert!(start["argv"].as_array().expect("argv").iter().any(|a| a == "opus"), "{start}");
    client.stop().await;
}

#[tokio::test]
async fn run_reads_a_prompt_file_and_appends_piped_stdin() {
    let env = Env::new();
    let client = env.server().await;
    let file = env.work.join("instructions.txt");
    std::fs::write(&file, "Follow these instructions").expect("write");
    let output = finished(env.command(SERVER).args(["run", "instructions.txt", "-q"]).stdin(Stdio::null())).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "1", "--quiet prints the id alone");

    let mut child = env
        .command(SERVER)
        .args(["run", "Review these changes", "--identifier", "review"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(env.stderr_log())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"diff --git a/x b/x\n+added line\n").await.expect("pipe");
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("t").expect("o");
    assert!(output.status.success());
    for task in ["instructions", "review"] {
        assert_eq!(client.wait_task(task, 30.0).await["status"], "completed");
    }
    let heads: Vec<String> = env.starts().iter().map(|s| s["prompt_head"].as_str().unwrap_or("").to_owned()).collect();
    assert!(heads.contains(&"Follow these instructions".to_owned()), "{heads:?}");
    assert!(heads.contains(&"Review these changes\n\ndiff --git a/x b/x\n+added line\n".to_owned()), "{heads:?}");
    client.stop().await;
}

#[tokio::test]
async fn run_watch_starts_a_worker_when_none_is_alive_and_reports_the_outcome() {
    let env = Env::new();
    let output = finished(env.command(SERVER).args(["run", "quick one", "--watch"]).stdin(Stdio::null())).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("started a background worker"), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("watching task #1 quick-one"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("✓ quick-one") && l.contains("completed")), "{stdout}");
    assert!(stdout.contains("task #1 quick-one: 1 completed, cost $0.0008"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no escape codes when piped: {stdout:?}");

    let output = finished(env.command(SERVER).args(["run", "broken @auth", "--watch"]).stdin(Stdio::null())).await;
    assert_eq!(output.status.code(), Some(1), "a failed task makes the watch fail");
    let stdout = text(&output.stdout);
    assert!(stdout.lines().any(|l| l.contains("✗ broken-auth") && l.contains("failed")), "{stdout}");
    no_executor_left(&env).await;
}

#[tokio::test]
async fn orchestrate_the_seed_full_stack_workflow_and_wait() {
    let env = Env::new();
    for dir in ["backend", "frontend"] {
        std::fs::create_dir_all(env.work.join(dir)).expect("mkdir");
    }
    let workflow = json!({ "tasks": [
        { "identifier": "design_api", "execution_prompt": "Design REST API specification for todo app", "model": "opus" },
        { "identifier": "create_backend", "execution_prompt": "Implement FastAPI backend based on API spec",
          "depends_on": ["design_api"], "working_directory": "./backend" },
        { "identifier": "create_frontend", "execution_prompt": "Build React frontend with TypeScript",
          "depends_on": ["design_api"], "working_directory": "./frontend" },
        { "identifier": "add_tests", "execution_prompt": "Write comprehensive test suites",
          "depends_on": ["create_backend", "create_frontend"], "initial_delay": 0.2 },
        { "identifier": "create_docker", "execution_prompt": "Create Docker Compose configuration",
          "depends_on": ["add_tests"] },
    ] });
    std::fs::write(env.work.join("workflow.json"), workflow.to_string()).expect("write");
    let output = finished(
        env.command(SERVER).args(["orchestrate", "workflow.json", "--wait", "--name", "todo-app"]).stdin(Stdio::null()),
    )
    .await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.starts_with("queued orchestration 1 (todo-app) with 5 tasks:"), "{stdout}");
    assert!(stdout.contains("orchestration 1 (todo-app): 5 completed"), "{stdout}");
    let backend = env
        .starts()
        .into_iter()
        .find(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("Implement FastAPI")))
        .expect("backend ran");
    assert!(backend["cwd"].as_str().is_some_and(|c| c.ends_with("/backend")), "relative to the file: {backend}");
    no_executor_left(&env).await;
}

#[tokio::test]
async fn a_bad_workflow_is_refused_whole_and_stores_nothing() {
    let env = Env::new();
    let cases = [
        (json!({ "tasks": [{ "identifier": "a", "execution_prompt": "x", "depends_on": ["nope"] }] }), "nope"),
        (json!({ "tasks": [{ "identifier": "a" }] }), "execution_prompt"),
        (json!({ "tasks": [{ "identifier": "a", "execution_prompt": "x", "colour": "red" }] }), "colour"),
    ];
    for (workflow, needle) in cases {
        std::fs::write(env.work.join("bad.json"), workflow.to_string()).expect("write");
        let output = finished(env.command(SERVER).args(["orchestrate", "bad.json"]).stdin(Stdio::null())).await;
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(stderr.contains("bad.json") && stderr.contains(needle), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    std::fs::write(env.work.join("broken.json"), "{ not json").expect("write");
    let output = finished(env.command(SERVER).args(["orchestrate", "broken.json"]).stdin(Stdio::null())).await;
    assert!(text(&output.stderr).contains("not a valid workflow"), "{}", text(&output.stderr));
    if env.db_path().exists() {
        assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0);
    }
}

#[tokio::test]
async fn ctrl_c_stops_watching_and_leaves_the_task_running() {
    let env = Env::new();
    let client = env.server().await;
    let mut child = env
        .command(SERVER)
        .args(["run", "long @sleep=60", "--identifier", "long", "--watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(env.stderr_log())
        .spawn()
        .expect("spawn");
    eventually(20.0, "the task to start", || env.starts().into_iter().next()).await;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(130));
    let task = client.ok("get_status", json!({ "task": "long" })).await;
    assert_eq!(task["status"], "running", "watching stopped, the work did not: {task}");
    client.ok("cancel", json!({ "task": "long" })).await;
    client.stop().await;
}

#[tokio::test]
async fn inspect_watch_follows_queued_work_in_lines_or_json() {
    let env = Env::new();
    let client = env.server().await;
    client
        .ok(
            "create_orchestration",
            json!({ "name": "demo", "tasks": [
                { "identifier": "first", "execution_prompt": "first @sleep=1" },
                { "identifier": "second", "execution_prompt": "second @auth", "depends_on": ["first"] },
            ] }),
        )
        .await;
    // No argument: every unfinished orchestration.
    let output = env.inspect(&["watch"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "second failed: {stdout}");
    assert!(stdout.starts_with("watching orchestration 1 (demo): 2 tasks"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("✓ first") && l.contains("completed")), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("✗ second") && l.contains("failed")), "{stdout}");
    assert!(
        stdout.trim_end().ends_with(
            "orchestration 1 (demo): 1 completed, 1 failed, cost $0.0008\n✗ second #2 failed: auth: Invalid API key · Fix external API key"
        ),
        "{stdout}"
    );

    let output = env.inspect(&["watch", "first", "--json"]).await;
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> =
        text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines[0]["task_identifier"], "first");
    assert_eq!(lines[0]["status"], "completed");
    assert_eq!(lines.last().expect("summary")["completed"], 1);
    client.stop().await;
}

#[tokio::test]
async fn run_options_reach_the_task() {
    let env = Env::new();
    let client = env.server().await;
    std::fs::create_dir_all(env.work.join("sub")).expect("mkdir");
    let first =
        finished(env.command(SERVER).args(["run", "first @sleep=1", "--identifier", "first"]).stdin(Stdio::null()))
            .await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = finished(
        env.command(SERVER)
            .args([
                "run",
                "second",
                "--identifier",
                "second",
                "--depends-on",
                "first",
                "--dir",
                "sub",
                "--priority",
                "5",
            ])
            .args(["--timeout-seconds", "120"])
            .stdin(Stdio::null()),
    )
    .await;
    let stdout = text(&second.stdout);
    assert!(stdout.contains("second (waiting)"), "it waits for first: {stdout}");
    let done = client.wait_task("second", 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let starts = env.starts();
    // After its dependency's results (see tests/it/results.rs).
    let run = starts
        .iter()
        .find(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("second\n\n## Results")))
        .expect("second ran");
    assert!(run["cwd"].as_str().is_some_and(|c| c.ends_with("/sub")), "{run}");
    let conn = rusqlite::Connection::open(env.db_path()).expect("db");
    let (priority, timeout): (i64, i64) = conn
        .query_row("SELECT priority, timeout_seconds FROM tasks WHERE task_identifier = 'second'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!((priority, timeout), (5, 120));
    client.stop().await;
}

#[tokio::test]
async fn ctrl_c_to_the_whole_group_right_after_queuing_leaves_the_work_to_the_worker() {
    use tokio::io::AsyncBufReadExt as _;
    let env = Env::new();
    let mut child = env
        .command(SERVER)
        .args(["run", "quick one", "--watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("t").expect("line");
    assert!(first.is_some_and(|l| l.starts_with("queued task #1")));
    // As a terminal's Ctrl-C does: to the whole foreground process group, at once.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(130), "it stopped watching, it was not killed");
    eventually(30.0, "the background worker to run the task anyway", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == 1).then_some(())
    })
    .await;
    no_executor_left(&env).await;
}

#[tokio::test]
async fn made_up_identifiers_are_valid_and_free_and_priorities_may_be_negative() {
    let env = Env::new();
    let client = env.server().await;
    for expected in ["task-2024", "task-2024-2"] {
        let output = finished(
            env.command(SERVER)
                .args(["run", "2024", "--orchestration", "yearly", "--priority", "-5"])
                .stdin(Stdio::null()),
        )
        .await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains(&format!(" {expected} (")), "{}", text(&output.stdout));
    }
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE priority = -5"), 2);
    let taken = finished(
        env.command(SERVER)
            .args(["run", "again", "--identifier", "task-2024", "--orchestration", "yearly"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(!taken.status.success());
    assert!(text(&taken.stderr).contains("--identifier"), "the error speaks of the flag: {}", text(&taken.stderr));
    client.stop().await;
}

#[tokio::test]
async fn run_takes_a_result_schema_and_can_leave_out_the_dependencies_results() {
    let env = Env::new();
    let client = env.server().await;
    std::fs::write(env.work.join("schema.json"), r#"{"type": "object", "required": ["answer"]}"#).expect("schema");
    let queued = finished(
        env.command(SERVER)
            .args(["run", "@structured={\"answer\":42}", "--identifier", "asked", "--result-schema", "schema.json"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(queued.status.success(), "{}", text(&queued.stderr));
    let done = client.wait_task("asked", 30.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["structured_result"], serde_json::json!({ "answer": 42 }), "{done}");
    let plain = finished(
        env.command(SERVER)
            .args(["run", "plain", "--identifier", "plain", "--depends-on", "asked", "--no-dependency-results"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    client.wait_task("plain", 30.0).await;
    assert!(env.starts().iter().any(|s| s["prompt_head"] == "plain"), "the prompt as written");
    let refused =
        finished(env.command(SERVER).args(["run", "x", "--result-schema", "not json, no file"]).stdin(Stdio::null()))
            .await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--result-schema is neither JSON nor a file"), "{}", text(&refused.stderr));
    client.stop().await;
}
