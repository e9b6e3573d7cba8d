//! Projects on one shared database: two editor windows (servers started in two git
//! repositories) with the same task identifiers never bind, read, cancel, retry or wait on each
//! other's tasks by a bare identifier; `#id` still reads anything; lists keep to the caller's
//! project unless asked for all; a client's first root is its session's project; the inspect CLI
//! scopes to the current directory; and a database from before projects gets them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Client, Env, INSPECT, eventually, finished, text};

/// Two git repositories under the test's working directory (a `.git` directory is all that
/// project detection looks for), canonical as the server stores paths.
fn two_repositories(env: &Env) -> (PathBuf, PathBuf) {
    let make = |name: &str| {
        let repo = env.work.join(name);
        std::fs::create_dir_all(repo.join(".git")).expect("mkdir .git");
        std::fs::create_dir_all(repo.join("src")).expect("mkdir src");
        repo.canonicalize().expect("canonical")
    };
    (make("repo-a"), make("repo-b"))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

async fn running(client: &Client, task: &str) {
    for _ in 0..200 {
        let status = client.ok("get_status", json!({ "task": task })).await;
        if status["status"] == "running" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{task} did not start");
}

fn ids(list: &Value, key: &str, id: &str) -> Vec<i64> {
    list[key].as_array().expect("list").iter().map(|t| t[id].as_i64().expect("id")).collect()
}

#[tokio::test]
async fn the_same_identifiers_in_two_projects_stay_apart() {
    let env = Env::new();
    let (a, b) = two_repositories(&env);
    let in_a = env.server_in(&a.join("src")).await;
    let in_b = env.server_in(&b).await;

    let a_build = in_a.create("build", "build a @sleep=60", json!({})).await;
    let b_build = in_b.create("build", "build b @sleep=60", json!({})).await;
    let (a_build, b_build) = (a_build["task_id"].as_i64().expect("id"), b_build["task_id"].as_i64().expect("id"));
    running(&in_a, "build").await;
    running(&in_b, "build").await;

    // Status: each sees its own `build`, though B's is the newest in the database.
    let status = in_a.ok("get_status", json!({ "task": "build" })).await;
    assert_eq!(status["task_id"], a_build, "{status}");
    assert_eq!(status["project"], shown(&a), "{status}");
    assert_eq!(in_b.ok("get_status", json!({ "task": "build" })).await["project"], shown(&b));

    // A dependency binds to A's `build` and joins A's orchestration, not B's.
    let test = in_a.create("test", "test a", json!({ "depends_on": ["build"] })).await;
    assert_eq!(test["depends_on"][0]["task_id"], a_build, "{test}");
    let a_orchestration = in_a.ok("get_status", json!({ "task": "build" })).await["orchestration_id"].clone();
    assert_eq!(test["orchestration_id"], a_orchestration, "{test}");
    assert_ne!(in_b.ok("get_status", json!({ "task": "build" })).await["orchestration_id"], a_orchestration);

    // Wait and output name A's task too.
    let waited = in_a.ok("wait", json!({ "task": "build", "timeout_seconds": 0.2 })).await;
    assert_eq!((waited["task_id"].as_i64(), waited["timed_out"].as_bool()), (Some(a_build), Some(true)), "{waited}");
    let output = in_a.ok("get_task_output", json!({ "task": "build" })).await;
    assert_eq!(output["task_id"], a_build, "{output}");

    // Cancel from A stops A's `build`; B's runs on.
    // (Either server may be running it: the one that does stops it, at once or when it sees the
    // change.)
    let cancelled = in_a.ok("cancel", json!({ "task": "build" })).await;
    assert_eq!(in_a.wait_task("build", 30.0).await["status"], "cancelled", "{cancelled}");
    assert_eq!(in_b.ok("get_status", json!({ "task": "build" })).await["status"], "running");

    // Retry from A retries A's; trying B's from B is refused (it is running), so nothing there moved.
    let retried = in_a.ok("retry", json!({ "task": "build" })).await;
    assert!(retried.to_string().contains(&a_build.to_string()), "{retried}");
    let b_status = in_b.ok("get_status", json!({ "task": "build" })).await;
    assert_eq!((b_status["status"].as_str(), b_status["attempt"].as_i64()), (Some("running"), Some(1)), "{b_status}");

    // Lists keep to the caller's project unless asked for all.
    let listed = in_a.ok("list_tasks", json!({})).await;
    let mut a_tasks = ids(&listed, "tasks", "task_id");
    a_tasks.sort_unstable();
    assert_eq!(a_tasks, [a_build, test["task_id"].as_i64().expect("id")], "{listed}");
    assert!(listed["tasks"].as_array().expect("tasks").iter().all(|t| t["project"] == shown(&a)), "{listed}");
    let everything = in_a.ok("list_tasks", json!({ "all_projects": true })).await;
    assert!(ids(&everything, "tasks", "task_id").contains(&b_build), "{everything}");
    let orchestrations = in_b.ok("list_orchestrations", json!({})).await;
    assert_eq!(orchestrations["count"], 1, "{orchestrations}");
    assert_eq!(orchestrations["orchestrations"][0]["project"], shown(&b));
    assert_eq!(in_b.ok("list_orchestrations", json!({ "all_projects": true })).await["count"], 2);

    // An identifier only in the other project is an error that gives its #id and project,
    // for reading and for a dependency; a #id dependency across projects is refused too.
    let lint = in_b.create("lint", "lint b", json!({})).await["task_id"].as_i64().expect("id");
    for tool in ["get_status", "cancel", "retry", "wait", "get_task_output"] {
        let message = in_a.err(tool, json!({ "task": "lint" })).await;
        assert!(message.contains(&format!("#{lint}")) && message.contains(&shown(&b)), "{tool}: {message}");
    }
    let message = in_a
        .err("create_task", json!({ "task_identifier": "x", "execution_prompt": "x", "depends_on": ["lint"] }))
        .await;
    assert!(message.contains(&format!("#{lint}")) && message.contains(&shown(&b)), "{message}");
    let message = in_a
        .err(
            "create_task",
            json!({ "task_identifier": "x", "execution_prompt": "x", "depends_on": [format!("#{lint}")] }),
        )
        .await;
    assert!(message.contains("never cross projects"), "{message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier = 'x'"), 0);

    // #id still reads any task.
    let status = in_a.ok("get_status", json!({ "task": format!("#{b_build}") })).await;
    assert_eq!(
        (status["task_identifier"].as_str(), status["project"].as_str()),
        (Some("build"), Some(shown(&b).as_str()))
    );

    in_a.stop().await;
    in_b.stop().await;
}

#[tokio::test]
async fn a_client_s_first_root_is_its_session_s_project() {
    let env = Env::new();
    let (a, b) = two_repositories(&env);
    // Started in the test's directory (outside both), as a client that names its workspace.
    let root = format!("file://{}", shown(&a.join("src")).replace(' ', "%20"));
    let client = env.server_with_roots(&[&root, &format!("file://{}", shown(&b))]).await;
    let created = client.create("build", "build", json!({})).await;
    let status = client.ok("get_status", json!({ "task": "build" })).await;
    assert_eq!(status["project"], shown(&a), "{status}");
    assert_eq!(status["working_directory"], shown(&a.join("src")), "tasks run in the root by default: {status}");
    assert_eq!(status["task_id"], created["task_id"]);
    client.wait_task("build", 30.0).await;
    // A server in the test's directory without roots is another project.
    let plain = env.server().await;
    assert!(plain.err("get_status", json!({ "task": "build" })).await.contains(&shown(&a)));
    assert_eq!(plain.ok("list_tasks", json!({})).await["count"], 0);
    plain.stop().await;
    client.stop().await;
}

#[tokio::test]
async fn the_inspect_cli_resolves_in_the_current_directory_s_project() {
    let env = Env::new();
    let (a, b) = two_repositories(&env);
    let in_a = env.server_in(&a).await;
    let in_b = env.server_in(&b).await;
    let a_build = in_a.create("build", "build a", json!({})).await["task_id"].as_i64().expect("id");
    let b_build = in_b.create("build", "build b @sleep=60", json!({})).await["task_id"].as_i64().expect("id");
    in_a.wait_task("build", 30.0).await;
    running(&in_b, "build").await;
    let inspect = |dir: &Path, args: &[&str]| {
        let mut command = env.command(INSPECT);
        command.current_dir(dir).args(args);
        command
    };
    let status = finished(&mut inspect(&a.join("src"), &["--json", "status", "build"])).await;
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!((status["task_id"].as_i64(), status["project"].as_str()), (Some(a_build), Some(shown(&a).as_str())));
    let listed = finished(&mut inspect(&a, &["--json", "list"])).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(ids(&listed, "tasks", "task_id"), [a_build], "{listed}");
    let all = finished(&mut inspect(&a, &["list", "--all-projects"])).await;
    let table = text(&all.stdout);
    assert!(table.contains("project") && table.contains(&shown(&b)) && table.contains(&shown(&a)), "{table}");
    let tree = text(
        &finished(&mut inspect(&a, &["orchestration-status", &status["orchestration_id"].to_string()])).await.stdout,
    );
    assert_eq!(tree.lines().nth(1), Some(format!("project {}", shown(&a)).as_str()), "{tree}");
    // Watching without a target follows this project's work: A's finished orchestration, not
    // B's running one.
    let watch = finished(&mut inspect(&a, &["watch"])).await;
    let watched = text(&watch.stdout);
    let heading = format!("watching orchestration {}", status["orchestration_id"]);
    assert!(watch.status.success() && watched.starts_with(&heading), "{watched}");
    let orchestrations = finished(&mut inspect(&b, &["--json", "list-orchestrations"])).await;
    let orchestrations: Value = serde_json::from_slice(&orchestrations.stdout).expect("json");
    assert_eq!(orchestrations["count"], 1, "{orchestrations}");
    // Cancelling `build` from A's directory does not touch B's running task.
    let cancel = finished(&mut inspect(&a, &["cancel", "build"])).await;
    let said = text(&cancel.stdout);
    assert!(cancel.status.success() && said.contains(&format!("#{a_build} completed")), "A's, finished: {said}");
    assert_eq!(in_b.ok("get_status", json!({ "task": "build" })).await["status"], "running");
    // An identifier only in B, asked from A, names its #id.
    let lint = in_b.create("lint", "lint", json!({})).await["task_id"].as_i64().expect("id");
    let refused = finished(&mut inspect(&a, &["status", "lint"])).await;
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains(&format!("#{lint}")), "{stderr}");
    let cancelled = finished(&mut inspect(&b, &["cancel", &format!("#{b_build}")])).await;
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    in_a.stop().await;
    in_b.stop().await;
}

#[tokio::test]
async fn a_database_from_before_projects_gets_them() {
    let env = Env::new();
    let (a, b) = two_repositories(&env);
    std::fs::create_dir_all(&env.home).expect("mkdir home");
    {
        let conn = rusqlite::Connection::open(env.db_path()).expect("open");
        conn.execute_batch(include_str!("../../src/store/migrations/0001_initial.sql")).expect("0001");
        conn.execute_batch(include_str!("../../src/store/migrations/0002_recovery.sql")).expect("0002");
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO orchestrations (orchestration_id, name, created_at, timeout_ms) VALUES
                 (1, 'nightly', 1, 1000), (2, 'nightly-b', 2, 1000);",
        )
        .expect("orchestrations");
        for (id, orchestration, dir) in [(1, 1, a.join("src")), (2, 2, b.clone())] {
            conn.execute(
                "INSERT INTO tasks (task_id, orchestration_id, task_identifier, execution_prompt, working_directory,
                     model, permission_mode, timeout_seconds, max_attempts, status, created_at)
                 VALUES (?1, ?2, 'build', 'p', ?3, 'sonnet', 'default', 60, 3, 'completed', ?1)",
                rusqlite::params![id, orchestration, shown(&dir)],
            )
            .expect("task");
        }
    }
    let mut command = env.command(INSPECT);
    command.current_dir(&a).args(["--json", "list", "--all-projects"]);
    let listed = finished(&mut command).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let projects: Vec<&str> =
        listed["tasks"].as_array().expect("tasks").iter().map(|t| t["project"].as_str().expect("p")).collect();
    assert_eq!(projects, [shown(&b), shown(&a)], "{listed}");
    assert_eq!(env.sql_count("SELECT count(*) FROM orchestrations WHERE project = ''"), 0);
    // Old tasks resolve in their project now: `build` from A is task 1.
    let client = env.server_in(&a).await;
    assert_eq!(client.ok("get_status", json!({ "task": "build" })).await["task_id"], 1);
    eventually(5.0, "the schema version", || (env.sql_count("PRAGMA user_version") >= 4).then_some(())).await;
    client.stop().await;
}
