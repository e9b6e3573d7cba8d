//! The live view as a person sees it: in a real terminal (a tmux pane, whose screen is read back
//! as text) for Ctrl-C and resizing, and piped for the dependency tree, the countdown of a
//! delayed task and what `run --watch` shows when the task ends.
//!
//! The terminal tests need `tmux` on the PATH.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Env, INSPECT, SERVER, eventually};

/// A detached tmux session on a private socket, running one shell command; ended when dropped.
struct Pane {
    socket: PathBuf,
}

impl Pane {
    /// Runs `command` under bash in a `width` x 30 terminal with the test's environment, then
    /// prints `exit=<code>` and stays open to be read.
    async fn start(env: &Env, width: u16, command: &str) -> Pane {
        let socket = env.work.join("tmux.sock");
        let script = format!("{command}; echo exit=$?; exec sleep 600");
        let output = env
            .command("tmux")
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-x", &width.to_string(), "-y", "30"])
            .args(["bash", "--norc", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("these tests need tmux on the PATH (apt-get install tmux)");
        assert!(output.status.success(), "tmux: {}", String::from_utf8_lossy(&output.stderr));
        Pane { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// What the terminal shows now, as text, without trailing blank lines.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"]).trim_end().to_owned()
    }

    /// Waits until the screen shows what `check` looks for; returns that screen.
    async fn until(&self, seconds: f64, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = tokio::time::timeout(
            Duration::from_secs_f64(seconds),
            eventually(seconds + 1.0, what, || {
                last = self.screen();
                check(&last).then(|| last.clone())
            }),
        )
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}; the screen:\n{}", self.screen()))
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

fn quoted(path: &str) -> String {
    format!("'{}'", path.replace('\'', r"'\''"))
}

#[tokio::test]
async fn ctrl_c_in_a_terminal_leaves_one_clean_frame_and_the_task_running() {
    let env = Env::new();
    let client = env.server().await;
    let command = format!("{} run 'long @sleep=60' --identifier long --watch", quoted(SERVER));
    let pane = Pane::start(&env, 100, &command).await;
    pane.until(30.0, "the task running in the live view", |s| s.contains("Bash: step")).await;
    pane.tmux(&["send-keys", "C-c"]);
    let screen = pane.until(10.0, "the watch to exit", |s| s.contains("exit=")).await;
    assert!(screen.contains("exit=130"), "Ctrl-C stops watching with 130:\n{screen}");
    assert_eq!(screen.matches("task #1 long: 1 running").count(), 1, "the header is on screen once:\n{screen}");
    assert_eq!(screen.lines().filter(|l| l.starts_with("● long")).count(), 1, "{screen}");
    assert!(screen.contains("stopped watching; the tasks go on"), "{screen}");
    assert!(!screen.contains("^C"), "the echoed ^C is drawn over:\n{screen}");
    let task = client.ok("get_status", json!({ "task": "long" })).await;
    assert_eq!(task["status"], "running", "watching stopped, the work did not: {task}");
    client.ok("cancel", json!({ "task": "long" })).await;
    client.stop().await;
}

/// True when the screen shows exactly the frame: the header once, then one line per task in tree
/// order, every line within `width` columns, and nothing else (no piece of an older frame) but
/// the numbers printed before it.
fn one_clean_frame(screen: &str, width: usize, tasks: &[&str]) -> bool {
    let lines: Vec<&str> =
        screen.lines().filter(|l| !l.trim().is_empty() && !l.bytes().all(|b| b.is_ascii_digit())).collect();
    lines.len() == tasks.len() + 1
        && lines[0].starts_with("orchestration 1 (resize-demo): ")
        && lines[1..].iter().zip(tasks).all(|(line, task)| line.starts_with(task))
        && lines.iter().all(|l| l.chars().count() < width)
}

#[tokio::test]
async fn resizing_the_terminal_redraws_one_clean_frame() {
    let env = Env::new();
    let client = env.server().await;
    client
        .ok(
            "create_orchestration",
            json!({ "name": "resize-demo", "tasks": [
                { "identifier": "design_the_rest_api", "execution_prompt": "design @sleep=60" },
                { "identifier": "implement_the_backend", "execution_prompt": "backend",
                  "depends_on": ["design_the_rest_api"] },
                { "identifier": "write_the_documentation", "execution_prompt": "docs @sleep=60" },
            ] }),
        )
        .await;
    // Output above the frame, as in a terminal in use: what a terminal re-wraps there stays in view.
    let pane = Pane::start(&env, 120, &format!("seq 1 12; {} watch 1", quoted(INSPECT))).await;
    let tasks = ["├─ ● design_the_rest_api", "│  └─ ○ implement_the_backend", "└─ ● write_the_documentation"];
    let wide = pane
        .until(30.0, "both running tasks to show their steps", |s| {
            s.lines().filter(|l| l.contains("Bash: step")).count() == 2
        })
        .await;
    assert!(one_clean_frame(&wide, 120, &tasks), "{wide}");
    assert!(wide.lines().any(|l| l.chars().count() > 70), "lines long enough to wrap at 60 columns:\n{wide}");

    // Narrower than the lines drawn: the terminal re-wraps them; the view must redraw cleanly.
    pane.tmux(&["resize-window", "-x", "60"]);
    pane.until(10.0, "one clean frame 60 columns wide", |s| one_clean_frame(s, 60, &tasks)).await;

    // And wider again: the lines grow back, still one frame.
    pane.tmux(&["resize-window", "-x", "120"]);
    pane.until(10.0, "one clean frame 120 columns wide", |s| {
        one_clean_frame(s, 120, &tasks) && s.lines().filter(|l| l.contains("Bash: step")).count() == 2
    })
    .await;
    for task in ["design_the_rest_api", "write_the_documentation"] {
        client.ok("cancel", json!({ "task": task })).await;
    }
    client.stop().await;
}

async fn finished(command: &mut tokio::process::Command) -> (Option<i32>, String) {
    let output = tokio::time::timeout(Duration::from_secs(90), command.stdin(Stdio::null()).output())
        .await
        .expect("finished in time")
        .expect("run");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn run_watch_ends_with_the_task_s_answer_or_its_error() {
    let env = Env::new();
    let client = env.server().await;
    let (code, stdout) = finished(env.command(SERVER).args([
        "run",
        "say it @result=The answer is 42.",
        "--identifier",
        "answer",
        "--watch",
    ]))
    .await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("watching task #1 answer: 1 task\n"), "one task, not '1 tasks':\n{stdout}");
    assert!(
        stdout.ends_with("task #1 answer: 1 completed, cost $0.0008\nresult:\n  The answer is 42.\n"),
        "the answer under the summary:\n{stdout}"
    );

    let (code, stdout) =
        finished(env.command(SERVER).args(["run", "fail @auth", "--identifier", "broken", "--watch"])).await;
    assert_eq!(code, Some(1), "{stdout}");
    let tail: Vec<&str> = stdout.lines().rev().take(2).collect();
    assert!(tail[1].starts_with("task #2 broken: 1 failed"), "{stdout}");
    assert!(tail[0].starts_with("error: auth: Invalid API key"), "the error, whole:\n{stdout}");
    client.stop().await;
}

#[tokio::test]
async fn orchestrate_wait_draws_the_tree_counts_down_a_delay_and_ends_with_the_errors() {
    let env = Env::new();
    let client = env.server().await;
    let workflow = json!({ "tasks": [
        { "identifier": "design", "execution_prompt": "design the API" },
        { "identifier": "backend", "execution_prompt": "backend @auth", "depends_on": ["design"] },
        { "identifier": "frontend", "execution_prompt": "frontend", "depends_on": ["design"], "initial_delay": 3 },
        { "identifier": "tests", "execution_prompt": "tests", "depends_on": ["backend", "frontend"] },
    ] });
    std::fs::write(env.work.join("workflow.json"), workflow.to_string()).expect("write");
    let (code, stdout) =
        finished(env.command(SERVER).args(["orchestrate", "workflow.json", "--wait", "--name", "tree-demo"])).await;
    assert_eq!(code, Some(1), "backend failed:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines.iter().position(|l| *l == "watching orchestration 1 (tree-demo): 4 tasks").expect(&stdout);
    // The first lines: every task once, in tree order, with the tree's branches; `tests`, which
    // depends on both, under the first.
    let expected = [("└─ ", "design"), ("   ├─ ", "backend"), ("   │  └─ ", "tests"), ("   └─ ", "frontend")];
    for (line, (prefix, name)) in lines[start + 1..start + 5].iter().zip(expected) {
        let line = &line[9..]; // after the clock
        let after_mark: String = line.chars().skip(prefix.chars().count() + 1).collect();
        assert!(
            line.starts_with(prefix) && after_mark.starts_with(&format!(" {name} ")),
            "{line:?} should be {name} after {prefix:?}:\n{stdout}"
        );
    }
    let delayed = lines
        .iter()
        .find(|l| l.contains("○ frontend") && l.contains("pending"))
        .unwrap_or_else(|| panic!("frontend waits out its delay as pending:\n{stdout}"));
    // A delay of 3 s, seen first within it: however late the first line was drawn on a loaded
    // machine, it counts down from at most 3 s.
    let seconds: u64 = delayed
        .split("starts in ")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix('s'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a countdown in seconds: {delayed}"));
    assert!((1..=3).contains(&seconds), "{delayed}");
    assert!(lines.iter().any(|l| l.contains("   ├─ ✗ backend ") && l.contains("failed")), "{stdout}");
    assert_eq!(
        &lines[lines.len() - 2..],
        [
            "orchestration 1 (tree-demo): 2 completed, 1 failed, 1 skipped, cost $0.0016",
            "✗ backend #2 failed: auth: Invalid API key · Fix external API key",
        ],
        "{stdout}"
    );
    client.stop().await;
}
