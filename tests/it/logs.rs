//! Task logs of databases that share a log directory: task ids repeat across databases, so each
//! database keeps its task logs in a directory of its own, and the default database keeps the
//! default layout (`<log_dir>/tasks/task_<id>_summary.log`).

use serde_json::json;

use crate::harness::Env;

#[tokio::test]
async fn two_databases_sharing_a_log_directory_keep_their_task_logs_apart() {
    // The first uses the default database in its home; the second shares that home (and so its
    // log directory) but sets only CLAUDE_WORKER_DB, as the troubleshooting section suggests.
    let first = Env::new();
    let other_db = first.work.join("elsewhere/work.db");
    std::fs::create_dir_all(other_db.parent().expect("parent")).expect("mkdir");
    let second = Env::new()
        .set("CLAUDE_WORKER_HOME", &first.home.display().to_string())
        .set("CLAUDE_WORKER_DB", &other_db.display().to_string());

    let mut summaries = Vec::new();
    for (env, word) in [(&first, "alpha"), (&second, "beta")] {
        let client = env.server().await;
        let created = client.create("only", &format!("{word} @result=answer from {word}"), json!({})).await;
        assert_eq!(created["task_id"], 1, "task #1 in both databases");
        assert_eq!(client.wait_task("only", 30.0).await["status"], "completed");
        // A newer task, so that prune may delete task #1 (it keeps the newest ids).
        client.create("later", &format!("{word} later"), json!({})).await;
        assert_eq!(client.wait_task("later", 30.0).await["status"], "completed");
        let output = client.ok("get_task_output", json!({ "task": 1 })).await;
        summaries.push(std::path::PathBuf::from(output["summary_log"].as_str().expect("path")));
        client.stop().await;
    }
    assert_eq!(summaries[0], first.home.join("tasks/task_1_summary.log"), "the default layout is kept");
    let second_dir = summaries[1].parent().expect("dir");
    assert_eq!(second_dir.parent(), Some(first.home.as_path()), "under the shared log directory");
    let name = second_dir.file_name().expect("name").to_string_lossy().into_owned();
    assert!(name.starts_with("tasks-work-"), "named after the database: {name}");
    for (path, own, foreign) in [(&summaries[0], "alpha", "beta"), (&summaries[1], "beta", "alpha")] {
        let text = std::fs::read_to_string(path).expect("summary log");
        assert!(text.contains(&format!("answer from {own}")), "{path:?}: {text}");
        assert!(!text.contains(foreign), "{path:?} holds only its own task: {text}");
    }

    // Pruning the second database deletes its logs of task #1 only.
    let pruned = second.inspect(&["prune", "--older-than", "0s", "--json"]).await;
    assert!(pruned.status.success(), "{}", String::from_utf8_lossy(&pruned.stderr));
    let report: serde_json::Value = serde_json::from_slice(&pruned.stdout).expect("json");
    assert_eq!(report["log_files"], 2, "{report}");
    assert!(!summaries[1].exists(), "the second database's log of task #1 is gone");
    assert!(second_dir.join("task_2_summary.log").exists(), "its newest task is kept");
    assert!(summaries[0].exists(), "the first database's log is kept");
    assert!(first.home.join("tasks/task_1_detailed.log").exists());
}

/// The lines of the global log about one task, in order.
fn global_lines_of(env: &Env, task: &str) -> Vec<String> {
    let log = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    log.lines().filter(|l| l.contains(&format!("task={task} "))).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_global_log_says_once_that_each_task_of_a_graph_was_created_and_on_what_it_depends() {
    let env = Env::new();
    let client = env.server().await;
    let tasks = json!([
        { "identifier": "base", "execution_prompt": "base @result=ok" },
        { "identifier": "left", "execution_prompt": "left @result=ok", "depends_on": ["base"] },
        { "identifier": "join", "execution_prompt": "join @result=ok", "depends_on": ["left", "base"] },
    ]);
    let created = client.ok("create_orchestration", json!({ "name": "logged", "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let task_id = |name: &str| {
        created["tasks"].as_array().expect("tasks").iter().find(|t| t["identifier"] == name).expect("listed")["task_id"]
            .as_i64()
            .expect("id")
    };
    let (base, left) = (task_id("base"), task_id("left"));
    for (task, detail) in [
        ("base", None),
        ("left", Some(format!("created: depends on base (#{base})"))),
        ("join", Some(format!("created: depends on left (#{left}), base (#{base})"))),
    ] {
        let lines = global_lines_of(&env, task);
        let created: Vec<&String> = lines.iter().filter(|l| l.contains(" created")).collect();
        assert_eq!(created.len(), 1, "one created line for {task}: {lines:#?}");
        if let Some(detail) = detail {
            assert!(created[0].contains(&detail), "{task}: {lines:#?}");
        }
        // Written after the commit that stored it, and before anything that followed.
        let first_claim = lines.iter().position(|l| l.contains("claimed")).expect("claimed");
        let created_at = lines.iter().position(|l| l.contains(" created")).expect("created");
        assert!(created_at < first_claim, "{task}: {lines:#?}");
    }
    client.stop().await;
}
