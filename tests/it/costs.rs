//! Costs as a user reads them in JSON: sums of the CLI's costs print as the decimals they are
//! (three tasks of $0.0008 cost $0.0024, not `0.0024000000000000002`) in the tools, the
//! resources and the inspect CLI.

use serde_json::{Value, json};

use crate::harness::Env;

/// The noise a plain f64 sum of three $0.0008 tasks prints.
const NOISE: &str = "0.0024000000000000002";

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).expect("text content")
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(NOISE), "{what} prints float noise: {text}");
    assert!(text.contains("0.0024"), "{what} shows the sum 0.0024: {text}");
}

#[tokio::test]
async fn summed_costs_print_without_float_noise() {
    assert_eq!((0.0008f64 + 0.0008 + 0.0008).to_string(), NOISE, "the sum this test is about");
    let env = Env::new();
    let client = env.server().await;
    // success-text.jsonl reports total_cost_usd 0.0008 for each of them.
    let tasks: Vec<Value> =
        ["a", "b", "c"].iter().map(|name| json!({ "identifier": name, "execution_prompt": name })).collect();
    let created = client.ok("create_orchestration", json!({ "tasks": tasks, "name": "costs" })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["completed_tasks"], 3, "{done}");

    let status = client.call("get_status", json!({ "orchestration_id": id })).await;
    assert_clean("get_status", &text_of(&status));
    assert_eq!(status.structured_content.expect("structured")["cost_usd"], json!(0.0024));
    assert_clean("list_orchestrations", &text_of(&client.call("list_orchestrations", json!({})).await));
    let resource = client
        .service
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!("claude-worker://orchestrations/{id}")))
        .await
        .expect("resources/read");
    assert_clean("the orchestration resource", &serde_json::to_string(&resource).expect("JSON"));
    client.stop().await;

    for args in [
        &["list-orchestrations", "--json"][..],
        &["orchestration-status", &id.to_string(), "--json"],
        &["cost", "--json"],
    ] {
        let output = env.inspect(args).await;
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_clean(&format!("claude-worker-inspect {}", args.join(" ")), &text);
    }
}
