//! Results that reach the dependents (issue 11): a dependent's prompt ends with its dependencies'
//! results (unless it asks for none), a resumed session is not given them twice, and a
//! `result_schema` makes the CLI answer with a structured result that is validated, stored and
//! returned.

use serde_json::{Value, json};

use crate::harness::{Env, text};

const HEADING: &str = "## Results of the tasks this one depends on";

fn answer_schema() -> Value {
    json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]})
}

/// The fake CLI's start lines of the runs of task `task_id` (found by the run tag in their
/// environment), oldest first.
fn runs_of(env: &Env, task_id: i64) -> Vec<Value> {
    env.starts()
        .into_iter()
        .filter(|start| {
            let tag = start["run_tag"].as_str().unwrap_or("");
            tag.rsplit('/').nth(1).and_then(|id| id.parse::<i64>().ok()) == Some(task_id)
        })
        .collect()
}

/// The whole prompt a run read on its stdin.
fn prompt_of(run: &Value) -> String {
    let path = run["prompt_path"].as_str().expect("the start line names the prompt file");
    std::fs::read_to_string(path).expect("read the prompt the fake CLI recorded")
}

fn id_of(created: &Value, identifier: &str) -> i64 {
    created["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["identifier"] == identifier))
        .and_then(|t| t["task_id"].as_i64())
        .expect("the task was created")
}

#[tokio::test]
async fn a_dependent_is_given_its_dependencies_results_and_structured_result() {
    let env = Env::new();
    let client = env.server().await;
    let tasks = json!([
        { "identifier": "analyze", "execution_prompt": "@result=The module has three entry points." },
        { "identifier": "measure", "execution_prompt": r#"@structured={"answer":42}"#, "result_schema": answer_schema() },
        { "identifier": "refactor", "execution_prompt": "Refactor it. @result=refactored", "depends_on": ["analyze", "measure"] },
    ]);
    let created = client.ok("create_orchestration", json!({ "name": "pipeline", "tasks": tasks })).await;
    let done = client.wait_orchestration(created["orchestration_id"].as_i64().expect("id"), 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (analyze, measure, refactor) =
        (id_of(&created, "analyze"), id_of(&created, "measure"), id_of(&created, "refactor"));

    // Tasks without dependencies get their prompt exactly as written.
    let analyze_runs = runs_of(&env, analyze);
    assert_eq!(prompt_of(&analyze_runs[0]), "@result=The module has three entry points.");
    // Only the task with a schema runs with it, as compact JSON.
    let measure_runs = runs_of(&env, measure);
    assert_eq!(measure_runs[0]["json_schema"], answer_schema(), "{}", measure_runs[0]);
    let argv: Vec<&str> = measure_runs[0]["argv"].as_array().expect("argv").iter().filter_map(Value::as_str).collect();
    let at = argv.iter().position(|a| *a == "--json-schema").expect("--json-schema given");
    assert_eq!(argv[at + 1], answer_schema().to_string());
    assert!(analyze_runs[0]["json_schema"].is_null());

    let runs = runs_of(&env, refactor);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let prompt = prompt_of(&runs[0]);
    assert!(prompt.starts_with(&format!("Refactor it. @result=refactored\n\n{HEADING}\n")), "{prompt}");
    let analyze_at = prompt
        .find(&format!("### `analyze` (task #{analyze})\nResult:\n```\nThe module has three entry points.\n```\n"))
        .expect("analyze's result");
    let measure_entry = format!(
        "### `measure` (task #{measure})\nResult:\n```\n{{\"answer\":42}}\n```\nStructured result (JSON):\n```json\n\
         {{\"answer\":42}}\n```\n"
    );
    let measure_at = prompt.find(&measure_entry).unwrap_or_else(|| panic!("measure's results in: {prompt}"));
    assert!(analyze_at < measure_at, "in the order of the dependencies' ids: {prompt}");
    assert_eq!(prompt.matches(HEADING).count(), 1);
    // The summary log says what was added.
    let output = client.ok("get_task_output", json!({ "task": "refactor" })).await;
    let tail = output["summary_tail"].to_string();
    assert!(tail.contains("the prompt ends with the results of 2 dependencies"), "{tail}");
    client.stop().await;
}

#[tokio::test]
async fn a_task_that_asks_for_no_results_gets_its_prompt_as_written() {
    let env = Env::new();
    let client = env.server().await;
    client.create("first", "@result=first done", json!({})).await;
    let second = client
        .create(
            "second",
            "@result=second done",
            json!({ "depends_on": ["first"], "include_dependency_results": false }),
        )
        .await;
    assert_eq!(client.wait_task("second", 60.0).await["status"], "completed");
    let runs = runs_of(&env, second["task_id"].as_i64().expect("id"));
    assert_eq!(prompt_of(&runs[0]), "@result=second done");
    // A wrong type is refused, naming the field.
    let refused = client
        .err(
            "create_task",
            json!({ "task_identifier": "x", "execution_prompt": "p", "include_dependency_results": "no" }),
        )
        .await;
    assert!(refused.contains("include_dependency_results"), "{refused}");
    client.stop().await;
}

#[tokio::test]
async fn a_resumed_session_is_not_given_the_results_twice() {
    let env = Env::new();
    let client = env.server().await;
    // b is refused once by the account's usage limit (resetting a second from now): its next
    // attempt resumes the session that was given the results.
    let tasks = json!([
        { "identifier": "a", "execution_prompt": "@result=a done" },
        { "identifier": "b", "execution_prompt": "b @usage-limit=1,b @result=b done", "depends_on": ["a"] },
    ]);
    let created = client.ok("create_orchestration", json!({ "tasks": tasks })).await;
    let done = client.wait_orchestration(created["orchestration_id"].as_i64().expect("id"), 90.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let runs = runs_of(&env, id_of(&created, "b"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs[0]["resume"].is_null() && runs[1]["resume"] == runs[0]["session"], "{runs:?}");
    assert_eq!(prompt_of(&runs[0]).matches(HEADING).count(), 1);
    let resumed = prompt_of(&runs[1]);
    assert!(!resumed.contains(HEADING) && !resumed.contains("a done"), "the resume prompt only: {resumed}");
    client.stop().await;
}

#[tokio::test]
async fn a_structured_result_is_stored_and_returned() {
    let env = Env::new();
    let client = env.server().await;
    let created =
        client.create("answer", r#"@structured={"answer":42}"#, json!({ "result_schema": answer_schema() })).await;
    let status = client.wait_task("answer", 60.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["structured_result"], json!({"answer": 42}), "{status}");
    assert_eq!(status["result"], r#"{"answer":42}"#);
    let output = client.ok("get_task_output", json!({ "task": "answer" })).await;
    assert_eq!(output["structured_result"], json!({"answer": 42}), "{output}");
    // A task without a schema shows none.
    client.create("plain", "@result=plain", json!({})).await;
    let plain = client.wait_task("plain", 60.0).await;
    assert!(plain.get("structured_result").is_none(), "{plain}");
    client.stop().await;

    // The inspect CLI shows it too.
    let id = created["task_id"].as_i64().expect("id").to_string();
    let shown = env.inspect(&["--json", "status", &id]).await;
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let value: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(value["structured_result"], json!({"answer": 42}), "{value}");
    let shown = env.inspect(&["status", &id]).await;
    let words = text(&shown.stdout);
    assert!(words.contains("  structured result:\n    {\n      \"answer\": 42\n    }"), "{words}");
}

#[tokio::test]
async fn a_result_that_does_not_match_its_schema_fails_the_task() {
    let env = Env::new();
    let client = env.server().await;
    let tasks = json!([
        { "identifier": "wrong", "execution_prompt": r#"@structured={"answer":"many"}"#, "result_schema": answer_schema() },
        { "identifier": "after", "execution_prompt": "@result=after", "depends_on": ["wrong"] },
        { "identifier": "missing", "execution_prompt": "@result=no JSON at all", "result_schema": answer_schema() },
    ]);
    let created = client.ok("create_orchestration", json!({ "tasks": tasks })).await;
    let done = client.wait_orchestration(created["orchestration_id"].as_i64().expect("id"), 60.0).await;
    assert_eq!(done["status"], "failed", "{done}");
    let wrong = client.ok("get_status", json!({ "task": "wrong" })).await;
    assert_eq!(
        (wrong["status"].as_str(), wrong["error"]["kind"].as_str()),
        (Some("failed"), Some("structured_result_invalid"))
    );
    let message = wrong["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("does not match the task's result_schema: at /answer: \"many\" is not of type \"integer\""),
        "{message}"
    );
    assert!(wrong.get("structured_result").is_none() && wrong.get("result").is_none(), "nothing stored: {wrong}");
    // Not retried: another attempt would answer the same.
    assert_eq!(runs_of(&env, id_of(&created, "wrong")).len(), 1);
    let after = client.ok("get_status", json!({ "task": "after" })).await;
    assert_eq!(after["error"]["kind"], "dependency_failed", "{after}");
    let missing = client.ok("get_status", json!({ "task": "missing" })).await;
    assert_eq!(missing["error"]["kind"], "structured_result_invalid", "{missing}");
    assert!(missing["error"]["message"].as_str().expect("message").contains("no structured result"), "{missing}");
    client.stop().await;
}

#[tokio::test]
async fn an_invalid_schema_is_refused_at_create_with_nothing_stored() {
    let env = Env::new();
    let client = env.server().await;
    let create = |schema: Value| json!({ "task_identifier": "t", "execution_prompt": "p", "result_schema": schema });
    let refused = client.err("create_task", create(json!({"type": "invalid_type"}))).await;
    assert!(refused.starts_with("result_schema is not a valid JSON Schema at /type"), "{refused}");
    let refused = client.err("create_task", create(json!("an object please"))).await;
    assert!(refused.starts_with("invalid argument result_schema: "), "{refused}");
    // In a batch, the task at fault is named and nothing of the batch is stored.
    let tasks = json!([
        { "identifier": "good", "execution_prompt": "p", "result_schema": answer_schema() },
        { "identifier": "bad", "execution_prompt": "p", "result_schema": {"required": "answer"} },
    ]);
    let refused = client.err("create_orchestration", json!({ "tasks": tasks })).await;
    assert!(refused.starts_with("bad: result_schema is not a valid JSON Schema"), "{refused}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0);
    assert_eq!(env.sql_count("SELECT count(*) FROM orchestrations"), 0);
    assert!(env.starts().is_empty());
    client.stop().await;
}
