//! Orchestration budgets as a user meets them: a budget that stops a graph part-way (later tasks
//! skipped `budget_exhausted`, the orchestration failed with its spend and budget), each attempt
//! started with at most what is left as its `--max-budget-usd`, a raise over MCP or from the
//! inspect CLI that finishes the graph, the default from the environment, and bad budgets
//! refused with what to do. The fake CLI reports the cost its prompt asks for (`@cost=USD`) and
//! stops, as the real one does, when that is over the cap it was given.

use serde_json::{Value, json};

use crate::harness::{Env, SERVER, task_of, text};

/// The `--max-budget-usd` each run of the task whose prompt starts with `head` was given, in
/// the order they started.
fn caps(env: &Env, head: &str) -> Vec<Option<String>> {
    env.starts()
        .iter()
        .filter(|start| start["prompt_head"].as_str().is_some_and(|p| p.starts_with(head)))
        .map(|start| {
            let argv: Vec<&str> = start["argv"].as_array().expect("argv").iter().filter_map(Value::as_str).collect();
            argv.iter().position(|a| *a == "--max-budget-usd").map(|at| argv[at + 1].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_budget_stops_a_graph_part_way_and_a_raise_finishes_it() {
    let env = Env::new();
    let client = env.server().await;
    // a spends $0.60 of $1.00; b is given the $0.40 left, needs $0.50 and is stopped there;
    // c never starts.
    let tasks = json!([
        { "identifier": "a", "execution_prompt": "a @cost=0.60" },
        { "identifier": "b", "execution_prompt": "b @cost=0.50", "depends_on": ["a"] },
        { "identifier": "c", "execution_prompt": "c @cost=0.10", "depends_on": ["b"] },
    ]);
    let created =
        client.ok("create_orchestration", json!({ "name": "capped", "max_budget_usd": 1.0, "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let stopped = client.wait_orchestration(id, 60.0).await;
    assert_eq!(stopped["status"], "failed", "{stopped}");
    assert_eq!(stopped["max_budget_usd"], json!(1.0));
    assert_eq!(stopped["budget"], "$1.10 of $1.00");
    let message = stopped["message"].as_str().expect("a message");
    assert!(message.contains("spent $1.10 of $1.00"), "{message}");
    assert!(message.contains(&format!("retry(orchestration_id={id}, max_budget_usd=<dollars>)")), "{message}");
    assert_eq!(task_of(&stopped, "a")["status"], "completed");
    assert_eq!(task_of(&stopped, "b")["status"], "failed");
    assert_eq!(task_of(&stopped, "b")["error"]["kind"], "budget_exhausted");
    assert_eq!(task_of(&stopped, "c")["status"], "skipped");
    assert_eq!(task_of(&stopped, "c")["error"]["kind"], "budget_exhausted");
    assert!(
        task_of(&stopped, "c")["error"]["message"].as_str().is_some_and(|m| m.contains("$1.10 of $1.00")),
        "{stopped}"
    );
    assert_eq!(caps(&env, "a"), [Some("1".to_owned())], "a is given the whole budget");
    assert_eq!(caps(&env, "b"), [Some("0.4".to_owned())], "b is given what is left");
    assert!(caps(&env, "c").is_empty(), "c never ran");
    // The lists show the spend too.
    let listed = client.ok("list_orchestrations", json!({})).await;
    assert_eq!(listed["orchestrations"][0]["budget"], "$1.10 of $1.00", "{listed}");

    // A raise that would be spent at once is refused, saying how much is needed.
    let refused = client.err("retry", json!({ "orchestration_id": id, "max_budget_usd": 1.05 })).await;
    assert!(refused.contains("would be spent at once") && refused.contains("$1.11"), "{refused}");
    // A plain retry would be stopped again at once: it says to raise the budget instead.
    let refused = client.err("retry", json!({ "orchestration_id": id })).await;
    assert!(refused.contains("max_budget_usd=<dollars>"), "{refused}");

    let raised = client.ok("retry", json!({ "orchestration_id": id, "max_budget_usd": 3 })).await;
    assert_eq!(raised["max_budget_usd"], json!(3.0));
    let reopened: Vec<(&str, &str)> = raised["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["task_identifier"].as_str().expect("id"), t["status"].as_str().expect("status")))
        .collect();
    assert_eq!(reopened, [("b", "pending"), ("c", "waiting")], "{raised}");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["budget"], "$1.70 of $3.00");
    assert!(done.get("message").is_none(), "nothing stopped any more: {done}");
    assert_eq!(caps(&env, "b"), [Some("0.4".to_owned()), Some("1.9".to_owned())]);
    assert_eq!(caps(&env, "c"), [Some("1.4".to_owned())]);
    client.stop().await;
}

#[tokio::test]
async fn the_inspect_cli_shows_the_spend_and_raises_the_budget() {
    let env = Env::new();
    let client = env.server().await;
    let tasks = json!([
        { "identifier": "first", "execution_prompt": "first @cost=0.50" },
        { "identifier": "second", "execution_prompt": "second @cost=0.20", "depends_on": ["first"] },
    ]);
    let created =
        client.ok("create_orchestration", json!({ "name": "small", "max_budget_usd": 0.3, "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let stopped = client.wait_orchestration(id, 60.0).await;
    assert_eq!(stopped["status"], "failed", "{stopped}");

    let tree = env.inspect(&["orchestration-status", "small"]).await;
    let tree = text(&tree.stdout);
    assert!(tree.contains("$0.50 of $0.30"), "{tree}");
    assert!(tree.contains(&format!("`claude-worker-inspect budget {id} <dollars>`")), "{tree}");
    assert!(!tree.contains("retry(orchestration_id"), "in the CLI's words: {tree}");
    let listed = text(&env.inspect(&["list-orchestrations"]).await.stdout);
    assert!(listed.contains("$0.50 of $0.30"), "{listed}");

    let raised = env.inspect(&["budget", "small", "2"]).await;
    assert!(raised.status.success(), "{}", text(&raised.stderr));
    let said = text(&raised.stdout);
    assert!(said.starts_with(&format!("The budget of orchestration {id} is now $2.00 ($0.50 spent).")), "{said}");
    // The server sees the raise through the database and runs the rest.
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["budget"], "$1.20 of $2.00");
    client.stop().await;
}

#[tokio::test]
async fn the_default_budget_comes_from_the_environment() {
    let env = Env::new().set("CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD", "0.75");
    let client = env.server().await;
    let created = client.create("lone", "lone @cost=0.10", json!({})).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!((done["max_budget_usd"].clone(), done["budget"].clone()), (json!(0.75), json!("$0.10 of $0.75")));
    assert_eq!(caps(&env, "lone"), [Some("0.75".to_owned())]);
    // Given with the task, the orchestration's own budget wins.
    let own = client.create("own", "own @cost=0.10", json!({ "orchestration_max_budget_usd": 2 })).await;
    let status = client.wait_orchestration(own["orchestration_id"].as_i64().expect("id"), 60.0).await;
    assert_eq!(status["max_budget_usd"], json!(2.0));
    client.stop().await;

    for bad in ["NaN", "inf", "-1", "100000"] {
        let mut command = env.command(SERVER);
        command.env("CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD", bad);
        let line = crate::harness::refusal_line(&crate::harness::run_to_refusal(&mut command).await);
        assert!(
            line.contains("CLAUDE_WORKER_DEFAULT_ORCHESTRATION_BUDGET_USD") && line.contains("at most 10000"),
            "{bad}: {line}"
        );
    }
}

#[tokio::test]
async fn bad_budgets_are_refused_with_what_to_do() {
    let env = Env::new();
    let client = env.server().await;
    let one = json!([{ "identifier": "a", "execution_prompt": "a" }]);
    for (budget, says) in
        [(json!(-1), "positive number of dollars"), (json!(0), "positive"), (json!(1e9), "at most 10000")]
    {
        let message =
            client.err("create_orchestration", json!({ "max_budget_usd": budget.clone(), "tasks": one.clone() })).await;
        assert!(message.contains("max_budget_usd") && message.contains(says), "{budget}: {message}");
        let message = client
            .err(
                "create_task",
                json!({ "task_identifier": "b", "execution_prompt": "b", "orchestration_max_budget_usd": budget }),
            )
            .await;
        assert!(message.contains("orchestration_max_budget_usd") && message.contains(says), "{message}");
    }
    let message = client.err("retry", json!({ "task": "a", "max_budget_usd": 5 })).await;
    assert!(message.contains("give it with orchestration_id"), "{message}");
    let created = client.create("c", "c", json!({})).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let message = client.err("retry", json!({ "orchestration_id": id, "max_budget_usd": -5 })).await;
    assert!(message.contains("positive number of dollars"), "{message}");
    let message = client.err("create_orchestration", json!({ "max_budget_usd": "lots", "tasks": one })).await;
    assert!(message.contains("max_budget_usd"), "{message}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier IN ('a', 'b')"), 0, "nothing stored");
    client.stop().await;

    // What JSON cannot carry, the command line can.
    let mut run = env.command(SERVER);
    run.args(["run", "--no-stdin", "--orchestration-max-budget-usd", "NaN", "do it"]);
    let output = crate::harness::finished(&mut run).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--orchestration-max-budget-usd NaN is not a budget"), "{stderr}");
    let workflow = env.work.join("workflow.json");
    std::fs::write(
        &workflow,
        json!({ "max_budget_usd": -2, "tasks": [{ "identifier": "w", "execution_prompt": "w" }] }).to_string(),
    )
    .expect("workflow");
    let mut orchestrate = env.command(SERVER);
    orchestrate.args(["orchestrate", workflow.to_str().expect("path")]);
    let output = crate::harness::finished(&mut orchestrate).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("positive number of dollars"), "{stderr}");
    for bad in ["inf", "-3", "NaN"] {
        let output = env.inspect(&["budget", &id.to_string(), bad]).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success() && stderr.contains("is not a budget"), "{bad}: {stderr}");
    }
    let output = env.inspect(&["budget", &id.to_string(), "1e6"]).await;
    assert!(text(&output.stderr).contains("at most 10000"), "{}", text(&output.stderr));
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE task_identifier IN ('do-it', 'w')"), 0);
}
