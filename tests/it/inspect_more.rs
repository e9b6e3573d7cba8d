//! The rest of the inspect CLI with the real binaries: `cost` sums over a populated database
//! (the fake CLI's success fixtures cost a known amount) and `--since`; `doctor` in a good and in
//! broken environments; `prune` with `--dry-run` and for real (tasks, events, edges, log files);
//! completion scripts; no colour when piped or with `NO_COLOR`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Env, INSPECT};

const DAY_MS: i64 = 86_400_000;

/// Runs the inspect CLI with extra variables set and others removed.
async fn inspect_with(env: &Env, args: &[&str], set: &[(&str, &str)], remove: &[&str]) -> std::process::Output {
    let mut command = env.command(INSPECT);
    command.args(args);
    for name in remove {
        command.env_remove(name);
    }
    for (name, value) in set {
        command.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("inspect finished in time")
        .expect("run inspect")
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "inspect failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(output)).expect("stdout is JSON")
}

/// Writes to the database directly, as a test's time machine.
fn sql(env: &Env, statement: &str) -> usize {
    let conn = rusqlite::Connection::open(env.db_path()).expect("open db");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn.execute(statement, []).expect(statement)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value} is a number"))
}

#[tokio::test]
async fn cost_sums_by_task_orchestration_model_and_day() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "name": "spend", "tasks": [
                { "identifier": "plain_a", "execution_prompt": "a" },
                { "identifier": "with_tool", "execution_prompt": "b @tool", "model": "opus", "depends_on": ["plain_a"] },
                { "identifier": "plain_b", "execution_prompt": "c" },
            ] }),
        )
        .await;
    let spend = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(spend, 60.0).await;
    let other = client.create("elsewhere", "d", json!({})).await;
    client.wait_task("elsewhere", 30.0).await;
    let other_orchestration = other["orchestration_id"].as_i64().expect("id");
    assert_ne!(other_orchestration, spend);
    client.stop().await;

    // success-text costs $0.0008 with 100 input tokens, success-bash-tool $0.0016 with 200.
    let all = json_of(&env.inspect(&["cost", "--json"]).await);
    assert_eq!(all["total"]["tasks"], 4, "{all}");
    assert!(close(f(&all["total"]["cost_usd"]), 0.0040), "{all}");
    assert_eq!(all["total"]["input_tokens"], 500, "{all}");
    let by_task = all["by_task"].as_array().expect("by_task");
    assert_eq!(by_task[0]["task_identifier"], "with_tool", "costliest first: {all}");
    assert!(close(f(&by_task[0]["cost_usd"]), 0.0016));
    for task in &by_task[1..] {
        assert!(close(f(&task["cost_usd"]), 0.0008), "{task}");
        assert_eq!(task["input_tokens"], 100);
    }
    let models: Vec<(String, u64, f64)> = all["by_model"]
        .as_array()
        .expect("by_model")
        .iter()
        .map(|m| (m["model"].as_str().expect("model").to_owned(), m["tasks"].as_u64().expect("n"), f(&m["cost_usd"])))
        .collect();
    assert_eq!(models.len(), 2, "{models:?}");
    assert_eq!((models[0].0.as_str(), models[0].1), ("opus", 1));
    assert!(close(models[0].2, 0.0016));
    assert_eq!((models[1].0.as_str(), models[1].1), ("sonnet", 3));
    assert!(close(models[1].2, 0.0024));
    let orchestrations = all["by_orchestration"].as_array().expect("by_orchestration");
    assert_eq!(orchestrations.len(), 2);
    assert_eq!(orchestrations[0]["orchestration_id"], spend);
    assert_eq!(orchestrations[0]["name"], "spend");
    assert!(close(f(&orchestrations[0]["cost_usd"]), 0.0032));
    // Each day's sums are its tasks' sums.
    for day in all["by_day"].as_array().expect("by_day") {
        let of_day: Vec<&Value> = by_task.iter().filter(|t| t["day"] == day["day"]).collect();
        assert_eq!(day["tasks"], of_day.len(), "{all}");
        assert!(close(f(&day["cost_usd"]), of_day.iter().map(|t| f(&t["cost_usd"])).sum()), "{all}");
    }

    // One task finished three days ago: --since leaves it out, and it has a day of its own.
    assert_eq!(
        sql(&env, &format!("UPDATE tasks SET ended_at = ended_at - 3 * {DAY_MS} WHERE task_identifier = 'plain_b'")),
        1
    );
    let all = json_of(&env.inspect(&["cost", "--json"]).await);
    assert_eq!(all["by_day"].as_array().expect("days").len(), 2, "{all}");
    let first_day = &all["by_day"][0];
    assert_eq!(first_day["tasks"], 1);
    assert!(close(f(&first_day["cost_usd"]), 0.0008));
    let recent = json_of(&env.inspect(&["cost", "--since", "2d", "--json"]).await);
    assert_eq!(recent["total"]["tasks"], 3, "{recent}");
    assert!(close(f(&recent["total"]["cost_usd"]), 0.0032), "{recent}");
    assert!(recent["since"].is_string());
    assert!(recent["by_task"].as_array().expect("tasks").iter().all(|t| t["task_identifier"] != "plain_b"));
    let week = json_of(&env.inspect(&["cost", "--since", "1w", "--json"]).await);
    assert_eq!(week["total"]["tasks"], 4);

    let one = json_of(&env.inspect(&["cost", "--orchestration", &other_orchestration.to_string(), "--json"]).await);
    assert_eq!(one["total"]["tasks"], 1);
    assert_eq!(one["by_task"][0]["task_identifier"], "elsewhere");

    let text = stdout(&env.inspect(&["cost"]).await);
    assert!(text.starts_with("Total $0.0040 over 4 tasks (all time)"), "{text}");
    for part in ["By day (UTC)", "By model", "By orchestration", "By task", "opus", "sonnet", "spend", "with_tool"] {
        assert!(text.contains(part), "the text shows {part}:\n{text}");
    }
    let bad = env.inspect(&["cost", "--since", "3 days"]).await;
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("is not a duration") && message.contains("30m, 12h, 7d, 2w"), "{message}");
}

/// A home with nothing of the user's in it, so that the credentials check sees only what the test puts there.
fn fake_home(env: &Env) -> PathBuf {
    let home = env.work.join("user-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    home
}

/// Where credentials may come from besides `HOME`: removed so that only what a test sets counts.
const CREDENTIAL_VARS: [&str; 4] =
    ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR"];

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("a {name} check in {report}"))
}

#[tokio::test]
async fn doctor_passes_in_a_good_environment_and_never_prints_secrets() {
    let env = Env::new();
    let home = fake_home(&env);
    let home = home.to_str().expect("UTF-8 path");
    let client = env.server().await;
    client.create("one", "x", json!({})).await;
    client.wait_task("one", 30.0).await;
    client.stop().await;

    let set = [
        ("HOME", home),
        ("ANTHROPIC_API_KEY", "sk-ant-very-secret-value"),
        ("CLAUDE_WORKER_ENABLE_SOUNDS", "false"),
        ("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "off"),
    ];
    let output = inspect_with(&env, &["doctor"], &set, &[]).await;
    let text = stdout(&output);
    assert!(!text.contains("sk-ant-very-secret-value"), "{text}");
    assert!(text.contains("2.1.331 (Claude Code)"), "the fake's --version answer: {text}");
    assert!(text.contains("ANTHROPIC_API_KEY in the environment"), "{text}");
    assert!(!text.contains("fail"), "{text}");
    let report = json_of(&inspect_with(&env, &["doctor", "--full", "--json"], &set, &[]).await);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["failures"], 0);
    for name in [
        "settings",
        "private",
        "claude",
        "credentials",
        "database",
        "schema",
        "integrity",
        "tasks",
        "logs",
        "sounds",
        "notifications",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }
    assert_eq!(check(&report, "integrity")["message"], "integrity_check: ok");
    assert!(check(&report, "tasks")["message"].as_str().expect("text").starts_with("1 task in 1 orchestration"));
    assert!(!report.to_string().contains("sk-ant-very-secret-value"));

    // A Claude Code login file counts as credentials too; the report names the file, not its content.
    std::fs::create_dir_all(PathBuf::from(home).join(".claude")).expect("mkdir");
    std::fs::write(
        PathBuf::from(home).join(".claude/.credentials.json"),
        r#"{"claudeAiOauth":{"accessToken":"tok-secret"}}"#,
    )
    .expect("write");
    let report = json_of(&inspect_with(&env, &["doctor", "--json"], &[("HOME", home)], &CREDENTIAL_VARS).await);
    let credentials = check(&report, "credentials");
    assert_eq!(credentials["status"], "ok", "{report}");
    assert!(credentials["message"].as_str().expect("text").contains(".claude/.credentials.json"), "{report}");
    assert!(!report.to_string().contains("tok-secret"));
}

#[tokio::test]
async fn doctor_fails_with_a_fix_when_things_are_broken() {
    let env = Env::new();
    let home = fake_home(&env);
    let home = home.to_str().expect("UTF-8 path");
    let client = env.server().await;
    client.create("stuck", "x", json!({})).await;
    client.wait_task("stuck", 30.0).await;
    client.stop().await;
    // A task left running by an owner that is gone (a pid that cannot exist), its lease long over.
    let owner = format!("{}:2000000000:1", nix::unistd::gethostname().expect("hostname").to_string_lossy());
    sql(
        &env,
        &format!(
            "UPDATE tasks SET status = 'running', ended_at = NULL, owner = '{owner}', lease_expires_at = 1 WHERE task_identifier = 'stuck'"
        ),
    );

    let missing = [("HOME", home), ("CLAUDE_WORKER_CLAUDE_BIN", "/nonexistent/bin/claude")];
    let output = inspect_with(&env, &["doctor"], &missing, &CREDENTIAL_VARS).await;
    assert_eq!(output.status.code(), Some(1), "a failed check exits 1");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let claude_line = text.lines().position(|l| l.starts_with("fail  claude")).unwrap_or_else(|| panic!("{text}"));
    assert!(text.lines().nth(claude_line + 1).is_some_and(|l| l.contains("fix: install Claude Code")), "{text}");
    assert!(text.contains("fail  credentials"), "{text}");
    let report = json_of_failing(&inspect_with(&env, &["doctor", "--json"], &missing, &CREDENTIAL_VARS).await);
    assert_eq!(report["ok"], false);
    let claude = check(&report, "claude");
    assert_eq!(claude["status"], "fail");
    assert!(claude["fix"].as_str().expect("a fix").contains("CLAUDE_WORKER_CLAUDE_BIN"), "{report}");
    let tasks = check(&report, "tasks");
    assert_eq!(tasks["status"], "warn", "{report}");
    assert!(tasks["message"].as_str().expect("text").contains("stuck running: #1 stuck"), "{report}");
    assert!(tasks["fix"].as_str().expect("a fix").contains("claude-worker work --until-idle"), "{report}");

    // A switch that is neither true nor false.
    let output = inspect_with(&env, &["doctor"], &[("CLAUDE_WORKER_ENABLE_SOUNDS", "maybe")], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        text.lines().any(|l| l.starts_with("fail") && l.contains("CLAUDE_WORKER_ENABLE_SOUNDS=\"maybe\"")),
        "{text}"
    );

    // A claude that is there but not executable.
    let not_executable = env.work.join("claude-not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write");
    let path = not_executable.to_str().expect("UTF-8 path");
    let report =
        json_of_failing(&inspect_with(&env, &["doctor", "--json"], &[("CLAUDE_WORKER_CLAUDE_BIN", path)], &[]).await);
    assert!(check(&report, "claude")["fix"].as_str().expect("a fix").contains("chmod +x"), "{report}");

    // A database that is not one.
    std::fs::write(env.work.join("junk.db"), "this is not SQLite, not even close".repeat(200)).expect("write");
    let junk = env.work.join("junk.db");
    let output = inspect_with(&env, &["doctor", "--json", "--db", junk.to_str().expect("path")], &[], &[]).await;
    let report = json_of_failing(&output);
    assert_eq!(check(&report, "database")["status"], "fail", "{report}");
    // The stuck task goes back to how it was, for the audit at the end.
    sql(&env, "UPDATE tasks SET status = 'completed', ended_at = 1, owner = NULL WHERE task_identifier = 'stuck'");
}

fn json_of_failing(output: &std::process::Output) -> Value {
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[tokio::test]
async fn prune_deletes_old_finished_orchestrations_and_their_logs_only() {
    let env = Env::new();
    let client = env.server().await;
    let old = client
        .ok(
            "create_orchestration",
            json!({ "name": "old", "tasks": [
                { "identifier": "old_a", "execution_prompt": "a" },
                { "identifier": "old_b", "execution_prompt": "b", "depends_on": ["old_a"] },
            ] }),
        )
        .await["orchestration_id"]
        .as_i64()
        .expect("id");
    let mixed = client
        .ok(
            "create_orchestration",
            json!({ "name": "mixed", "tasks": [
                { "identifier": "mixed_old", "execution_prompt": "c" },
                { "identifier": "mixed_new", "execution_prompt": "d" },
            ] }),
        )
        .await["orchestration_id"]
        .as_i64()
        .expect("id");
    client.wait_orchestration(old, 60.0).await;
    client.wait_orchestration(mixed, 60.0).await;
    client.create("recent", "e", json!({})).await;
    client.wait_task("recent", 30.0).await;
    client.create("sleeper", "sleeper @sleep=60", json!({})).await;
    crate::harness::eventually(20.0, "sleeper to start", || {
        env.starts().iter().any(|s| s["prompt_head"].as_str().is_some_and(|p| p.starts_with("sleeper"))).then_some(())
    })
    .await;
    // Ten days ago: the old orchestration, one task of the mixed one, and the sleeper's creation.
    sql(
        &env,
        &format!(
            "UPDATE tasks SET ended_at = ended_at - 10 * {DAY_MS} WHERE task_identifier IN ('old_a', 'old_b', 'mixed_old')"
        ),
    );
    sql(&env, &format!("UPDATE tasks SET created_at = created_at - 10 * {DAY_MS} WHERE task_identifier = 'sleeper'"));

    let tasks = env.sql_count("SELECT count(*) FROM tasks");
    let events = env.sql_count("SELECT count(*) FROM task_events");
    let old_events = env.sql_count(&format!(
        "SELECT count(*) FROM task_events WHERE task_id IN (SELECT task_id FROM tasks WHERE orchestration_id = {old})"
    ));
    assert!(old_events >= 8, "created, claimed, started, completed for each");
    let log_dir = env.home.join("tasks");
    let old_logs: Vec<PathBuf> = ["old_a", "old_b"]
        .iter()
        .flat_map(|name| {
            let id = env.sql_count(&format!("SELECT task_id FROM tasks WHERE task_identifier = '{name}'"));
            [log_dir.join(format!("task_{id}_summary.log")), log_dir.join(format!("task_{id}_detailed.log"))]
        })
        .collect();
    assert!(old_logs.iter().all(|p| p.exists()), "{old_logs:?}");
    let logs_before = std::fs::read_dir(&log_dir).expect("log dir").count();

    let dry = json_of(&env.inspect(&["prune", "--older-than", "7d", "--dry-run", "--json"]).await);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["orchestrations"], json!([old]), "{dry}");
    let names: Vec<&str> =
        dry["tasks"].as_array().expect("tasks").iter().map(|t| t["task_identifier"].as_str().expect("name")).collect();
    assert_eq!(names, ["old_a", "old_b"], "{dry}");
    assert_eq!(dry["events"], old_events);
    assert_eq!(dry["dependencies"], 1);
    assert_eq!(dry["log_files"], 4);
    assert_eq!(dry["kept_finished"], 1, "mixed_old stays with its orchestration");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), tasks, "a dry run deletes nothing");
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events"), events);
    assert!(old_logs.iter().all(|p| p.exists()));
    let text = stdout(&env.inspect(&["prune", "--older-than", "7d", "--dry-run"]).await);
    assert!(text.starts_with("dry run: would delete 1 orchestration, 2 tasks"), "{text}");
    assert!(text.contains("tasks it would delete:\n"), "the table is labelled: {text}");

    let done = json_of(&env.inspect(&["prune", "--older-than", "7d", "--json"]).await);
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        (done["tasks"].clone(), done["events"].clone(), done["log_files"].clone()),
        (dry["tasks"].clone(), dry["events"].clone(), json!(4))
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), tasks - 2);
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events"), events - old_events);
    assert_eq!(env.sql_count(&format!("SELECT count(*) FROM orchestrations WHERE orchestration_id = {old}")), 0);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM task_dependencies WHERE task_id NOT IN (SELECT task_id FROM tasks)"),
        0
    );
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE task_id NOT IN (SELECT task_id FROM tasks)"), 0);
    assert!(old_logs.iter().all(|p| !p.exists()), "the log files are gone");
    assert_eq!(std::fs::read_dir(&log_dir).expect("log dir").count(), logs_before - 4);
    for kept in ["mixed_old", "mixed_new", "recent", "sleeper"] {
        assert_eq!(
            env.sql_count(&format!("SELECT count(*) FROM tasks WHERE task_identifier = '{kept}'")),
            1,
            "{kept} kept"
        );
    }
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier = 'sleeper' AND status = 'running'"), 1);
    let again = json_of(&env.inspect(&["prune", "--older-than", "7d", "--json"]).await);
    assert_eq!(again["tasks"], json!([]), "nothing left to prune");
    let global = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    assert!(global.contains("pruned 1 orchestration, 2 tasks"), "the global log says what was pruned");

    // The server carries on with what is left.
    stdout(&env.inspect(&["cancel", "sleeper"]).await);
    assert_eq!(client.wait_task("sleeper", 30.0).await["status"], "cancelled");
    client.stop().await;
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&env.inspect(&["completions", shell]).await);
        assert!(script.contains("claude-worker-inspect"), "{shell}: {script}");
        for command in ["list", "orchestration-status", "cost", "doctor", "prune", "completions"] {
            assert!(script.contains(command), "the {shell} script knows {command}");
        }
    }
    let bad = env.inspect(&["completions", "tcsh"]).await;
    assert!(!bad.status.success());
    assert!(!env.db_path().exists(), "completions need no database");
}

#[tokio::test]
async fn colour_only_when_asked_or_on_a_terminal() {
    let env = Env::new();
    let client = env.server().await;
    client.create("painted", "x", json!({})).await;
    client.wait_task("painted", 30.0).await;
    client.stop().await;
    let escape = "\u{1b}[";
    for args in [&["list"][..], &["status", "painted"], &["cost"], &["orchestration-status", "1"]] {
        let piped = stdout(&env.inspect(args).await);
        assert!(!piped.contains(escape), "{args:?} piped has no escape codes: {piped:?}");
        let no_color = stdout(&inspect_with(&env, args, &[("NO_COLOR", "1")], &[]).await);
        assert!(!no_color.contains(escape), "{args:?} with NO_COLOR: {no_color:?}");
        let forced = stdout(&env.inspect(&[args, &["--color", "always"]].concat()).await);
        assert!(forced.contains(escape), "{args:?} --color always is coloured: {forced:?}");
        assert!(
            !stdout(&env.inspect(&[args, &["--color", "always", "--json"]].concat()).await).contains(escape),
            "JSON is never coloured"
        );
    }
    let doctor = inspect_with(&env, &["doctor"], &[("NO_COLOR", "1")], &[]).await;
    assert!(!String::from_utf8_lossy(&doctor.stdout).contains(escape));
}

#[tokio::test]
async fn prune_never_frees_an_id_for_reuse() {
    let env = Env::new();
    let client = env.server().await;
    for name in ["old", "newest"] {
        client.create(name, name, json!({})).await;
        assert_eq!(client.wait_task(name, 30.0).await["status"], "completed");
    }
    let output = env.inspect(&["prune", "--older-than", "0s"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 1, "the newest orchestration is kept");
    let created = client.create("next", "next", json!({})).await;
    assert_eq!(created["task_id"], 3, "a new task gets a new id: {created}");
    client.stop().await;
}
