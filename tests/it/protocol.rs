//! The MCP edge as a client sees it: both lifecycles, the tool list (read-only hints, output
//! schemas), instructions, and a stdout that carries nothing but JSON-RPC.

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{Client, Env, SERVER};

const TOOLS: [&str; 9] = [
    "create_task",
    "create_orchestration",
    "get_status",
    "list_orchestrations",
    "list_tasks",
    "get_task_output",
    "cancel",
    "retry",
    "wait",
];
const READ_ONLY: [&str; 5] = ["get_status", "list_orchestrations", "list_tasks", "get_task_output", "wait"];

async fn check_session(client: &Client, name: &str) {
    let info = client.service.peer_info().expect("peer info");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("claude-worker"));
    assert!(info.instructions.as_deref().is_some_and(|i| i.contains("create_task")), "instructions teach the workflow");
    let tools = client.service.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for tool in &tools {
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
        assert_eq!(read_only, READ_ONLY.contains(&tool.name.as_ref()), "readOnlyHint of {}", tool.name);
        assert!(tool.output_schema.is_some(), "{} has an output schema", tool.name);
        if tool.name == "create_task" {
            let properties = tool.input_schema.get("properties").expect("properties");
            assert_eq!(properties["depends_on"]["type"], "array", "{properties:?}");
            let required = tool.input_schema.get("required").expect("required");
            assert_eq!(required, &serde_json::json!(["task_identifier", "execution_prompt"]));
        }
        let description = tool.description.as_deref().unwrap_or("");
        assert!(!description.is_empty() && description.len() < 200, "{}: short description", tool.name);
    }
    client.create(name, "hello", json!({})).await;
    assert_eq!(client.wait_task(name, 30.0).await["status"], "completed");
}

#[tokio::test]
async fn initialize_lifecycle_at_both_versions() {
    let env = Env::new();
    for (i, version) in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25].into_iter().enumerate() {
        let client = env.server_with(version.clone()).await;
        assert_eq!(client.service.peer_info().expect("info").protocol_version, version);
        check_session(&client, &format!("init{i}")).await;
        client.stop().await;
    }
}

#[tokio::test]
async fn server_discover_lifecycle() {
    let env = Env::new();
    let client = env.server_discover().await;
    check_session(&client, "discovered").await;
    client.stop().await;
}

/// Drives the server with raw JSON-RPC lines and checks that every line it prints is JSON-RPC.
#[tokio::test]
async fn stdout_carries_only_json_rpc() {
    let env = Env::new().set("CLAUDE_WORKER_LOG_LEVEL", "debug");
    let mut child =
        env.command(SERVER).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let requests = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_task","arguments":{"task_identifier":"raw","execution_prompt":"hi @tool"}}}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"wait","arguments":{"task":"raw","timeout_seconds":30}}}),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}),
        json!({"jsonrpc":"2.0","id":5,"method":"no/such/method"}),
    ];
    // Requests may be handled concurrently: each waits for the answers it depends on.
    let mut answered = std::collections::HashMap::new();
    for (batch, wait_for) in [(&requests[..2], vec![1]), (&requests[2..3], vec![2]), (&requests[3..], vec![3, 4, 5])] {
        for request in batch {
            stdin.write_all(format!("{request}\n").as_bytes()).await.expect("write");
        }
        while !wait_for.iter().all(|id| answered.contains_key(id)) {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("answer in time")
                .expect("read")
                .expect("a line before EOF");
            let message: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout line is not JSON: {line:?}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if let Some(id) = message.get("id").and_then(Value::as_i64) {
                answered.insert(id, message);
            }
        }
    }
    assert_eq!(answered[&3]["result"]["structuredContent"]["status"], "completed", "{}", answered[&3]);
    assert!(answered[&4].get("error").is_some(), "an unknown tool is a JSON-RPC error");
    assert_eq!(answered[&5]["error"]["code"], -32601);
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after stdin closes")
        .expect("status");
    assert!(status.success(), "{status:?}");
    // Whatever came after: still JSON-RPC only.
    while let Ok(Some(line)) = lines.next_line().await {
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout line is not JSON: {line:?}"));
        assert_eq!(message["jsonrpc"], "2.0");
    }
}
