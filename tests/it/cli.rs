//! What a new user meets at the terminal, with the real binaries: work reopened by the inspect
//! CLI runs without an editor open, orchestrations named by name, workflow files that run where
//! they point and run again, stdin that says when it waits, a server started by hand that says
//! what it is, and messages in the CLI's own words.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::harness::{Env, INSPECT, SERVER, eventually, finished, no_executor_left, text};

#[tokio::test]
async fn inspect_retry_of_an_orchestration_by_name_starts_a_worker_when_none_is_alive() {
    let env = Env::new();
    // The first fails on its only attempt (a 529 the first time), and skips the second; no
    // editor is open.
    let workflow = json!({ "name": "nightly", "tasks": [
        { "identifier": "flaky", "execution_prompt": "flaky @529-once=k", "max_attempts": 1 },
        { "identifier": "after", "execution_prompt": "after", "depends_on": ["flaky"] },
    ] });
    std::fs::write(env.work.join("nightly.json"), workflow.to_string()).expect("write");
    let output =
        finished(env.command(SERVER).args(["orchestrate", "nightly.json", "--wait"]).stdin(Stdio::null())).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    no_executor_left(&env).await;
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'skipped'"), 1);

    let output = env.inspect(&["retry", "--orchestration", "nightly"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).trim(),
        "Retried 1 task of orchestration 1: flaky (#1) now pending. Reopened 1 task that had been skipped, now \
         waiting: after (#2)."
    );
    assert!(text(&output.stderr).contains("started a background worker"), "{}", text(&output.stderr));
    eventually(30.0, "the retried work to run without any editor open", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == 2).then_some(())
    })
    .await;
    no_executor_left(&env).await;

    let nothing = env.inspect(&["retry", "--orchestration", "nightly"]).await;
    assert_eq!(nothing.status.code(), Some(1));
    assert!(text(&nothing.stderr).contains("nothing to retry"), "{}", text(&nothing.stderr));
}

#[tokio::test]
async fn the_inspect_cli_takes_orchestration_names_and_speaks_its_own_commands() {
    let env = Env::new();
    let client = env.server().await;
    client
        .ok(
            "create_orchestration",
            json!({ "name": "handoff", "tasks": [
                { "identifier": "first", "execution_prompt": "first" },
                { "identifier": "second", "execution_prompt": "second @auth", "depends_on": ["first"] },
            ] }),
        )
        .await;
    client.wait_orchestration(1, 30.0).await;
    let ok = |output: std::process::Output| {
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let tree = ok(env.inspect(&["orchestration-status", "handoff"]).await);
    assert!(tree.starts_with("orchestration 1 \"handoff\": failed"), "{tree}");
    let list = ok(env.inspect(&["list", "--orchestration", "handoff"]).await);
    assert!(list.contains("first") && list.contains("second"), "{list}");
    let cost: Value =
        serde_json::from_str(&ok(env.inspect(&["--json", "cost", "--orchestration", "handoff"]).await)).expect("JSON");
    assert_eq!(cost["by_orchestration"][0]["orchestration_id"], 1, "{cost}");
    let watch = env.inspect(&["watch", "handoff"]).await;
    assert!(text(&watch.stdout).starts_with("watching orchestration 1 (handoff)"), "{}", text(&watch.stdout));

    for (args, command) in [
        (&["watch", "no-such-thing"][..], "no orchestration or task is named"),
        (&["orchestration-status", "no-such-thing"][..], "`claude-worker-inspect list-orchestrations`"),
        (&["status", "no-such-thing"][..], "`claude-worker-inspect list`"),
    ] {
        let output = env.inspect(args).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("no-such-thing") && stderr.contains(command), "{args:?}: {stderr}");
        for tool in ["list_tasks", "list_orchestrations", "get_status", "create_task"] {
            assert!(!stderr.contains(tool), "{args:?} names the MCP tool {tool}: {stderr}");
        }
    }
    client.stop().await;
}

#[tokio::test]
async fn list_orchestrations_counts_failed_cancelled_and_skipped_apart() {
    let env = Env::new();
    let client = env.server().await;
    client
        .ok(
            "create_orchestration",
            json!({ "name": "stopped", "tasks": [
                { "identifier": "slow", "execution_prompt": "slow @sleep=30" },
                { "identifier": "after", "execution_prompt": "after", "depends_on": ["slow"] },
            ] }),
        )
        .await;
    eventually(20.0, "slow to start", || env.starts().into_iter().next()).await;
    let output = env.inspect(&["cancel", "--orchestration", "stopped", "--reason", "changed my mind"]).await;
    let said = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(said.contains("Cancelled 1 task: #2."), "the waiting task is cancelled at once: {said}");
    assert!(!said.contains("(s)") && !said.contains("[]"), "in words: {said}");
    let done = client.wait_orchestration(1, 30.0).await;
    assert_eq!((done["cancelled_tasks"].as_i64(), done["failed_tasks"].as_i64()), (Some(2), Some(0)), "{done}");

    let table = text(&env.inspect(&["list-orchestrations"]).await.stdout);
    let header = table.lines().find(|l| l.contains("name")).expect("a header");
    let row = table.lines().find(|l| l.contains("stopped")).expect("the row");
    let cells = |line: &str| {
        line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect::<Vec<_>>()
    };
    let (names, values) = (cells(header), cells(row));
    let cell = |name: &str| {
        values[names.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name} in {header}"))].clone()
    };
    assert_eq!((cell("failed"), cell("cancelled"), cell("skipped")), ("0".into(), "2".into(), "0".into()), "{table}");
    client.stop().await;
}

#[tokio::test]
async fn a_workflow_file_runs_where_it_points_and_runs_again_as_a_numbered_run() {
    let env = Env::new();
    let project = env.work.join("project");
    std::fs::create_dir_all(project.join("backend")).expect("mkdir");
    let workflow = json!({ "name": "todo-app", "tasks": [
        { "identifier": "plan", "execution_prompt": "plan it" },
        { "identifier": "build", "execution_prompt": "build it", "depends_on": ["plan"], "working_directory": "backend" },
    ] });
    std::fs::write(project.join("workflow.json"), workflow.to_string()).expect("write");
    // From another directory than the file's.
    let other = env.work.join("elsewhere");
    std::fs::create_dir_all(&other).expect("mkdir");
    let orchestrate = |extra: &[&str]| {
        let mut command = env.command(SERVER);
        command.current_dir(&other).arg("orchestrate").arg(project.join("workflow.json")).args(extra);
        command.stdin(Stdio::null());
        command
    };
    let first = finished(&mut orchestrate(&["--wait"])).await;
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", text(&first.stderr));
    assert!(stdout.starts_with("queued orchestration 1 (todo-app) with 2 tasks:"), "{stdout}");
    let cwd_of = |prompt: &str| {
        env.starts()
            .into_iter()
            // A dependent's prompt goes on with its dependencies' results.
            .find(|s| s["prompt_head"].as_str().and_then(|p| p.split("\n\n## Results").next()) == Some(prompt))
            .and_then(|s| s["cwd"].as_str().map(str::to_owned))
            .expect("it ran")
    };
    let canonical = std::fs::canonicalize(&project).expect("canonical");
    assert_eq!(cwd_of("plan it"), canonical.display().to_string(), "a task without a directory runs by the file");
    assert_eq!(cwd_of("build it"), canonical.join("backend").display().to_string());

    // Finished: running the file again is a new, numbered run; -q prints only its id.
    let again = finished(&mut orchestrate(&["-q"])).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout).trim(), "2", "-q prints only the id");
    let conn = rusqlite::Connection::open(env.db_path()).expect("db");
    let name: String =
        conn.query_row("SELECT name FROM orchestrations WHERE orchestration_id = 2", [], |r| r.get(0)).expect("row");
    assert_eq!(name, "todo-app-2");

    // A name given with --name is used as it is: a taken one is refused, not renamed.
    let refused = finished(&mut orchestrate(&["--name", "todo-app"])).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"todo-app\" already exists") && stderr.contains("\"todo-app-3\""), "{stderr}");

    // While the latest run is unfinished, another is refused unless asked for.
    std::fs::write(
        project.join("workflow.json"),
        json!({ "name": "long-run", "tasks": [{ "identifier": "slow", "execution_prompt": "slow @sleep=30" }] })
            .to_string(),
    )
    .expect("write");
    let running = finished(&mut orchestrate(&["-q"])).await;
    assert!(running.status.success(), "{}", text(&running.stderr));
    let first_id = text(&running.stdout).trim().to_owned();
    let refused = finished(&mut orchestrate(&[])).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    let watch = format!("claude-worker-inspect watch {first_id}");
    for needle in ["\"long-run\"", "still", "--rerun", "\"long-run-2\"", &watch] {
        assert!(stderr.contains(needle), "{needle} in: {stderr}");
    }
    assert!(!stderr.contains("create_task"), "{stderr}");
    let beside = finished(&mut orchestrate(&["--rerun", "-q"])).await;
    assert!(beside.status.success(), "{}", text(&beside.stderr));
    // The latest run (long-run-2) is the one that counts now.
    let refused = finished(&mut orchestrate(&[])).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"long-run-2\"") && stderr.contains("\"long-run-3\""), "{stderr}");
    let names: Vec<String> = conn
        .prepare("SELECT name FROM orchestrations ORDER BY orchestration_id")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(names, ["todo-app", "todo-app-2", "long-run", "long-run-2"]);
    // Names are per project: the workflow's, the directory it lies in.
    for name in ["long-run", "long-run-2"] {
        let mut cancel = env.command(INSPECT);
        cancel.current_dir(&project).args(["cancel", "--orchestration", name]);
        let cancelled = finished(&mut cancel).await;
        assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    }
    no_executor_left(&env).await;
}

#[tokio::test]
async fn run_says_when_it_waits_for_stdin_and_queues_once_it_ends() {
    let env = Env::new();
    let mut child = env
        .command(SERVER)
        .args(["run", "Summarize the input", "--identifier", "summary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Nothing written yet, the pipe still open: it says what it waits for.
    let notice =
        tokio::time::timeout(Duration::from_secs(20), stderr.next_line()).await.expect("a notice").expect("line");
    let notice = notice.unwrap_or_default();
    assert!(notice.contains("reading stdin until it ends") && notice.contains("--no-stdin"), "{notice}");
    assert!(!env.db_path().exists() || env.sql_count("SELECT count(*) FROM tasks") == 0, "nothing queued yet");
    stdin.write_all(b"late input\n").await.expect("write");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").expect("status");
    assert!(status.success());
    eventually(30.0, "the task to run with the input", || {
        env.starts().into_iter().find(|s| s["prompt_head"] == "Summarize the input\n\nlate input\n")
    })
    .await;
    no_executor_left(&env).await;
}

/// Runs `command` under a pseudo-terminal (`script`, from util-linux/bsdutils) until it has
/// printed `until`, then stops it; returns what it printed.
async fn under_a_terminal(env: &Env, command: &str, until: &str) -> String {
    let mut child = env
        .command("script")
        .args(["-qfec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let _stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt as _;
        let mut buffer = [0u8; 4096];
        loop {
            let n = stdout.read(&mut buffer).await.expect("read");
            if n == 0 {
                return false;
            }
            seen.extend_from_slice(&buffer[..n]);
            if text(&seen).replace("\r\n", " ").replace('\n', " ").contains(until) {
                return true;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    let seen = text(&seen);
    assert!(found.unwrap_or(false), "{until:?} not printed: {seen}");
    seen
}

#[tokio::test]
async fn claude_worker_started_by_hand_in_a_terminal_says_what_it_is() {
    let env = Env::new();
    let seen = under_a_terminal(&env, SERVER, "Ctrl-D or Ctrl-C quits").await;
    assert!(seen.contains("MCP server") && seen.contains("claude mcp add claude-worker"), "{seen}");
    let seen = under_a_terminal(&env, &format!("{SERVER} work --until-idle"), "until none is left").await;
    assert!(seen.contains("running the tasks queued in"), "{seen}");
}

#[tokio::test]
async fn logs_json_is_json_and_an_invalid_setting_exits_2_in_both_binaries() {
    let env = Env::new();
    let client = env.server().await;
    client.create("stepper", "stepper @tool", json!({})).await;
    client.wait_task("stepper", 30.0).await;
    let output = env.inspect(&["logs", "stepper", "--json"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<Value> =
        text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["task_id"] == 1 && l["log"] == "summary"), "{lines:?}");
    assert!(lines.last().expect("a line")["line"].as_str().is_some_and(|l| l.contains("completed in")), "{lines:?}");
    client.stop().await;

    for program in [SERVER, INSPECT] {
        let output = finished(
            env.command(program)
                .args(if program == SERVER { &["run", "x"][..] } else { &["list"][..] })
                .env("CLAUDE_WORKER_MAX_CONCURRENT", "0")
                .stdin(Stdio::null()),
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "{program}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("CLAUDE_WORKER_MAX_CONCURRENT"), "{}", text(&output.stderr));
    }
}

#[tokio::test]
async fn run_passes_the_options_a_terminal_user_needs_and_completions_cover_claude_worker() {
    let env = Env::new();
    let client = env.server().await;
    let output = finished(
        env.command(SERVER)
            .args(["run", "careful work", "--identifier", "careful", "--permission-mode", "plan"])
            .args(["--allowed-tools", "Edit", "--allowed-tools", "Bash(git log:*)", "--disallowed-tools", "WebFetch"])
            .args(["--max-turns", "7", "--max-budget-usd", "0.5", "--system-prompt", "Be brief."])
            .args(["--append-system-prompt", "Say done.", "--max-attempts", "2"])
            .stdin(Stdio::null()),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(client.wait_task("careful", 30.0).await["status"], "completed");
    let start = env.starts().into_iter().find(|s| s["prompt_head"] == "careful work").expect("ran");
    let argv: Vec<String> =
        start["argv"].as_array().expect("argv").iter().filter_map(|a| a.as_str().map(str::to_owned)).collect();
    let after = |flag: &str| argv.iter().position(|a| a == flag).map(|i| argv[i + 1].clone());
    assert_eq!(after("--permission-mode").as_deref(), Some("plan"), "{argv:?}");
    assert_eq!(after("--max-turns").as_deref(), Some("7"), "{argv:?}");
    assert_eq!(after("--max-budget-usd").as_deref(), Some("0.5"), "{argv:?}");
    // The system prompts arrive through private files, not the argv.
    assert_eq!(start["system_prompt_file"]["text"], "Be brief.", "{start}");
    assert_eq!(start["append_system_prompt_file"]["text"], "Say done.", "{start}");
    assert!(!argv.iter().any(|a| a.contains("Be brief") || a.contains("Say done")), "{argv:?}");
    for value in ["Edit", "Bash(git log:*)", "WebFetch"] {
        assert!(argv.iter().any(|a| a == value), "{value} in {argv:?}");
    }
    let conn = rusqlite::Connection::open(env.db_path()).expect("db");
    let max_attempts: i64 = conn
        .query_row("SELECT max_attempts FROM tasks WHERE task_identifier = 'careful'", [], |r| r.get(0))
        .expect("row");
    assert_eq!(max_attempts, 2);

    let refused =
        finished(env.command(SERVER).args(["run", "x", "--permission-mode", "reckless"]).stdin(Stdio::null())).await;
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("--permission-mode") && !stderr.contains("permission_mode"), "{stderr}");
    client.stop().await;

    let completions = finished(env.command(SERVER).args(["completions", "bash"]).stdin(Stdio::null())).await;
    assert!(completions.status.success());
    let script = text(&completions.stdout);
    assert!(
        script.contains("claude-worker") && script.contains("orchestrate") && script.contains("--rerun"),
        "{script}"
    );
}

#[tokio::test]
async fn a_worker_started_from_inside_a_task_does_not_pass_for_part_of_it() {
    let env = Env::new();
    // `claude-worker run` in a task's shell: the task's attempt tag is in its environment.
    let output = finished(
        env.command(SERVER)
            .args(["run", "follow-up @sleep=5", "--identifier", "follow-up"])
            .env("CLAUDE_WORKER_RUN", "host:1:1/7/1")
            .stdin(Stdio::null()),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let pid: i32 = stderr
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("a background worker was started: {stderr}"));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the worker is alive");
    assert!(
        !environ.split(|b| *b == 0).any(|var| var.starts_with(b"CLAUDE_WORKER_RUN=")),
        "the worker carries the task's tag"
    );
    eventually(30.0, "the follow-up to run", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE status = 'completed'") == 1).then_some(())
    })
    .await;
    no_executor_left(&env).await;
}
