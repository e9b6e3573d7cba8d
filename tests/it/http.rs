//! `claude-worker serve --http` against the real binary: the Python tool's scripts, the API's
//! answers and errors (the same as the MCP tools'), the access rules, MCP over Streamable HTTP
//! with rmcp's own client, and clients that misbehave.

use std::time::Duration;

use reqwest::StatusCode;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::harness::{Env, HttpServer, TestClient};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client")
}

async fn get(server: &HttpServer, path: &str) -> (StatusCode, Value) {
    let response = client().get(server.url(path)).send().await.expect("GET");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(server: &HttpServer, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client().post(server.url(path)).json(&body).send().await.expect("POST");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The seed README's third example, as its script does it: submit the pipeline, then poll
/// `completed_tasks` / `total_tasks` until `status` is completed or failed.
#[tokio::test]
async fn the_python_tools_pipeline_example_runs_over_http() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let pipeline = json!({
        "tasks": [
            {"identifier": "extract_sales", "execution_prompt": "Extract sales data from PostgreSQL"},
            {"identifier": "extract_inventory", "execution_prompt": "Extract inventory from MongoDB"},
            {"identifier": "extract_customers", "execution_prompt": "Extract customer data from API"},
            {
                "identifier": "transform",
                "execution_prompt": "Clean, normalize, and join all datasets",
                "depends_on": ["extract_sales", "extract_inventory", "extract_customers"],
                "initial_delay": 0.2
            },
            {"identifier": "load_warehouse", "execution_prompt": "Load transformed data into Snowflake", "depends_on": ["transform"]},
            {"identifier": "generate_report", "execution_prompt": "Create executive dashboard", "depends_on": ["load_warehouse"], "model": "opus"}
        ]
    });
    let (status, created) = post(&server, "/api/v1/orchestrations", pipeline).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["orchestration_id"].as_i64().expect("orchestration_id");
    let mut seen = Vec::new();
    let last = loop {
        let (code, status) = get(&server, &format!("/api/v1/orchestrations/{id}")).await;
        assert_eq!(code, StatusCode::OK, "{status}");
        seen.push(format!("{}/{}", status["completed_tasks"], status["total_tasks"]));
        if matches!(status["status"].as_str(), Some("completed" | "failed")) {
            break status;
        }
        assert!(seen.len() < 600, "the pipeline did not finish: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!((last["completed_tasks"].as_u64(), last["total_tasks"].as_u64()), (Some(6), Some(6)));
    assert_eq!(last["tasks"].as_array().map(Vec::len), Some(6));
    // The report ran last, with its own model.
    let report = env.invocations().into_iter().find(|i| i.to_string().contains("Create executive dashboard"));
    assert!(report.expect("the report ran").to_string().contains("opus"));
    // The rest of the API sees the same work.
    let (_, listed) = get(&server, "/api/v1/orchestrations").await;
    assert_eq!(listed["orchestrations"][0]["orchestration_id"], id);
    let (_, tasks) = get(&server, &format!("/api/v1/tasks?orchestration_id={id}&limit=3")).await;
    assert_eq!(tasks["count"], 3);
    let (code, task) = get(&server, "/api/v1/tasks/transform").await;
    assert_eq!((code, task["status"].as_str()), (StatusCode::OK, Some("completed")), "{task}");
    let by_id = get(&server, &format!("/api/v1/tasks/{}", task["task_id"])).await.1;
    assert_eq!(by_id["task_identifier"], "transform");
    let (code, output) = get(&server, "/api/v1/tasks/transform/output?tail_lines=5").await;
    assert_eq!(code, StatusCode::OK, "{output}");
    assert!(output["result"].is_string(), "{output}");
    let (code, piece) = get(&server, "/api/v1/tasks/transform/log").await;
    assert_eq!(code, StatusCode::OK, "{piece}");
    assert!(piece["text"].as_str().is_some_and(|t| t.contains("completed in")), "{piece}");
    assert_eq!((piece["next"].clone(), piece["finished"].clone()), (piece["size"].clone(), json!(true)));
    let (_, rest) = get(&server, &format!("/api/v1/tasks/transform/log?from={}", piece["next"])).await;
    assert_eq!(rest["text"], "", "nothing after the end");
    for query in ["format=text", "log=detailed&format=text"] {
        let response =
            client().get(server.url(&format!("/api/v1/tasks/transform/log?{query}"))).send().await.expect("log");
        assert!(response.headers()["content-type"].to_str().unwrap_or("").starts_with("text/plain"));
        let text = response.text().await.expect("text");
        assert!(!text.is_empty(), "{query}");
        if query == "format=text" {
            assert_eq!(text, piece["text"].as_str().unwrap_or(""), "the whole summary log");
        }
    }
    let (code, _) = get(&server, "/api/v1/tasks/transform/log?log=everything").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, health) = get(&server, "/health").await;
    assert_eq!((code, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn tasks_are_created_cancelled_and_retried_over_http() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let (code, created) =
        post(&server, "/api/v1/tasks", json!({"task_identifier": "slow", "execution_prompt": "@sleep=60"})).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, after) = post(
        &server,
        "/api/v1/tasks",
        json!({"task_identifier": "after", "execution_prompt": "x", "depends_on": "slow"}),
    )
    .await;
    assert_eq!((code, after["status"].as_str()), (StatusCode::CREATED, Some("waiting")), "{after}");
    let orchestration = created["orchestration_id"].as_i64().expect("orchestration");
    crate::harness::eventually(20.0, "the slow task to run", || {
        (env.sql_count("SELECT COUNT(*) FROM tasks WHERE status = 'running'") == 1).then_some(())
    })
    .await;
    let (code, cancelled) = post(&server, "/api/v1/tasks/slow/cancel", json!({"reason": "changed my mind"})).await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    let (_, slow) = get(&server, "/api/v1/tasks/slow").await;
    assert_eq!(slow["status"], "cancelled", "{slow}");
    let (_, after) = get(&server, "/api/v1/tasks/after").await;
    assert_eq!(after["status"], "skipped", "{after}");
    // Retrying the orchestration runs both again; cancelling it stops them again.
    let (code, retried) = post(&server, &format!("/api/v1/orchestrations/{orchestration}/retry"), json!(null)).await;
    assert_eq!(code, StatusCode::OK, "{retried}");
    let (code, cancelled) = post(&server, &format!("/api/v1/orchestrations/{orchestration}/cancel"), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    let (_, status) = get(&server, &format!("/api/v1/orchestrations/{orchestration}")).await;
    assert_eq!(status["status"], "cancelled", "{status}");
    let (code, retried) = post(&server, "/api/v1/tasks/slow/retry", json!(null)).await;
    assert_eq!(code, StatusCode::OK, "{retried}");
    let (_, slow) = get(&server, "/api/v1/tasks/slow").await;
    assert_ne!(slow["status"], "cancelled", "{slow}");
    assert!(server.stop().await.success());
}

/// Malformed JSON, wrong fields, huge bodies, unknown routes and ids: a 4xx whose JSON says what
/// to fix, the same sentence the MCP tool gives; nothing stored.
#[tokio::test]
async fn bad_input_gets_a_4xx_that_says_what_to_fix() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_PROMPT_BYTES", "1000");
    let server = env.http_server("127.0.0.1:0").await;
    let raw = |body: &'static str| {
        client().post(server.url("/api/v1/orchestrations")).header("content-type", "application/json").body(body).send()
    };
    let response = raw("{\"tasks\": [").await.expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = response.json::<Value>().await.expect("json")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.starts_with("the body is not valid JSON"), "{error}");
    let response = raw("").await.expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (code, body) =
        post(&server, "/api/v1/orchestrations", json!({"tasks": [{"identifier": "a", "prompt": "x"}]})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap_or_default().contains("tasks[0]"), "{body}");
    let (code, body) = post(&server, "/api/v1/orchestrations", json!({"tasks": []})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    // A prompt over the cap is the service's refusal; a body far over it is not even read.
    let big = "x".repeat(2000);
    let (code, over_http) =
        post(&server, "/api/v1/tasks", json!({"task_identifier": "big", "execution_prompt": big})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{over_http}");
    let mcp = env.server().await;
    let over_mcp = mcp.err("create_task", json!({"task_identifier": "big", "execution_prompt": big})).await;
    assert_eq!(over_http["error"], over_mcp, "the same sentence on both edges");
    let unknown = json!({"task_identifier": "b", "execution_prompt": "x", "depends_on": ["nope"]});
    let (code, over_http) = post(&server, "/api/v1/tasks", unknown.clone()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(over_http["error"], mcp.err("create_task", unknown).await);
    mcp.stop().await;
    let huge = "y".repeat(200_000);
    let (code, body) =
        post(&server, "/api/v1/tasks", json!({"task_identifier": "huge", "execution_prompt": huge})).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("CLAUDE_WORKER_MAX_PROMPT_BYTES"), "{body}");
    // Unknown routes, ids and names.
    for (path, code) in [
        ("/nope", StatusCode::NOT_FOUND),
        ("/api/v1/orchestrations/999", StatusCode::NOT_FOUND),
        ("/api/v1/orchestrations/abc", StatusCode::NOT_FOUND),
        ("/api/v1/orchestrations/-1", StatusCode::NOT_FOUND),
        ("/api/v1/tasks/999", StatusCode::NOT_FOUND),
        ("/api/v1/tasks/..%2F..%2Fetc%2Fpasswd", StatusCode::NOT_FOUND),
        ("/api/v1/tasks/%00", StatusCode::NOT_FOUND),
        ("/api/v1/tasks?limit=many", StatusCode::BAD_REQUEST),
        ("/api/v1/tasks?colour=red", StatusCode::BAD_REQUEST),
        ("/api/v1/orchestrations?status=sleeping", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = get(&server, path).await;
        assert_eq!(got, code, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
    }
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM tasks"), 0, "nothing was stored");
    assert!(server.stop().await.success());
}

/// `Host`, `Origin`, cross-site changes and the token, on loopback with a token set.
#[tokio::test]
async fn requests_from_elsewhere_or_without_the_token_are_refused() {
    let env = Env::new().set("CLAUDE_WORKER_HTTP_TOKEN", "let-me-in");
    let server = env.http_server("127.0.0.1:0").await;
    let http = client();
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("send");
        let status = response.status();
        let auth = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("").to_owned());
        (status, auth, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let tasks = server.url("/api/v1/tasks");
    let (code, auth, body) = send(http.get(&tasks)).await;
    assert_eq!((code, auth.as_deref()), (StatusCode::UNAUTHORIZED, Some("Bearer")), "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("Authorization: Bearer"), "{body}");
    assert_eq!(send(http.get(&tasks).bearer_auth("wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(http.get(&tasks).bearer_auth("let-me-in")).await.0, StatusCode::OK);
    assert_eq!(send(http.get(&tasks).header("cookie", "claude_worker_token=let-me-in")).await.0, StatusCode::OK);
    // The health check needs no token.
    assert_eq!(send(http.get(server.url("/health"))).await.0, StatusCode::OK);
    // DNS rebinding: a name that is not ours.
    let (code, _, body) = send(http.get(&tasks).bearer_auth("let-me-in").header("host", "evil.example:80")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // Another page's scripts, even holding the token.
    let (code, _, body) =
        send(http.get(&tasks).bearer_auth("let-me-in").header("origin", "https://evil.example")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let own = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(send(http.get(&tasks).bearer_auth("let-me-in").header("origin", &own)).await.0, StatusCode::OK);
    // A cross-site form post, carrying the dashboard's cookie.
    let create = json!({"task_identifier": "csrf", "execution_prompt": "x"});
    let (code, _, body) = send(
        http.post(&tasks)
            .header("cookie", "claude_worker_token=let-me-in")
            .header("sec-fetch-site", "cross-site")
            .json(&create),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // MCP is behind the same door.
    let (code, _, _) =
        send(http.post(server.url("/mcp")).json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM tasks"), 0);
    // No wildcard CORS, ever.
    let response = http.get(&tasks).bearer_auth("let-me-in").header("origin", &own).send().await.expect("get");
    assert!(response.headers().get("access-control-allow-origin").is_none());
    assert!(server.stop().await.success());
}

/// Off loopback a token is needed: made once, printed once, kept 0600 beside the database,
/// and the same after a restart.
#[tokio::test]
async fn off_loopback_a_token_is_made_printed_once_and_kept() {
    let env = Env::new();
    let server = env.http_server("0.0.0.0:0").await;
    let token_line = server.said.iter().position(|l| l.contains("requests need this token")).expect("told");
    let token = server.said[token_line + 1].trim().to_owned();
    assert_eq!(token.len(), 64, "{:?}", server.said);
    let path = env.home.join("tasks.db.http-token");
    assert_eq!(std::fs::read_to_string(&path).expect("kept").trim(), token);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).expect("stat").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let tasks = server.url("/api/v1/tasks");
    assert_eq!(client().get(&tasks).send().await.expect("get").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client().get(&tasks).bearer_auth(&token).send().await.expect("get").status(), StatusCode::OK);
    assert!(server.stop().await.success());
    let again = env.http_server("0.0.0.0:0").await;
    assert!(!again.said.iter().any(|l| l.contains(&token)), "printed once: {:?}", again.said);
    assert!(again.said.iter().any(|l| l.contains("tasks.db.http-token")), "{:?}", again.said);
    let tasks = again.url("/api/v1/tasks");
    assert_eq!(client().get(&tasks).bearer_auth(&token).send().await.expect("get").status(), StatusCode::OK);
    assert!(again.stop().await.success());
}

/// MCP over Streamable HTTP with rmcp's own client: the same tools, and progress during `wait`.
#[tokio::test]
async fn mcp_over_http_serves_the_same_tools_with_progress() {
    use futures::StreamExt as _;
    use rmcp::model::{ClientRequest, ProtocolVersion, Request, ServerResult};
    use rmcp::service::PeerRequestOptions;

    let env = Env::new().set("CLAUDE_WORKER_HTTP_TOKEN", "t0ken");
    let server = env.http_server("127.0.0.1:0").await;
    let config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header("t0ken");
    let transport = StreamableHttpClientTransport::from_config(config);
    let mcp = TestClient::new(ProtocolVersion::V_2025_11_25).serve(transport).await.expect("initialize over HTTP");
    let tools = mcp.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for tool in ["create_task", "create_orchestration", "get_status", "wait", "cancel", "retry"] {
        assert!(names.contains(&tool), "{tool} in {names:?}");
    }
    let args = |value: Value| value.as_object().cloned().unwrap_or_default();
    let created = mcp
        .call_tool(
            CallToolRequestParams::new("create_task")
                .with_arguments(args(json!({"task_identifier": "over-http", "execution_prompt": "work @sleep=1"}))),
        )
        .await
        .expect("create_task");
    assert_ne!(created.is_error, Some(true), "{created:?}");
    let params =
        CallToolRequestParams::new("wait").with_arguments(args(json!({"task": "over-http", "timeout_seconds": 30})));
    let handle = mcp
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("send wait");
    let mut progress = mcp.service().progress.subscribe(handle.progress_token.clone()).await;
    let response = handle.await_response().await.expect("wait answered");
    let ServerResult::CallToolResult(result) = response else { panic!("unexpected response {response:?}") };
    let status = result.structured_content.expect("structured");
    assert_eq!((status["status"].as_str(), status["timed_out"].as_bool()), (Some("completed"), Some(false)));
    let mut notes = Vec::new();
    while let Ok(Some(note)) = tokio::time::timeout(Duration::from_millis(200), progress.next()).await {
        notes.push(note);
    }
    assert!(notes.iter().any(|n| n.message.as_deref().is_some_and(|m| m.contains("over-http"))), "{notes:?}");
    // The task is the HTTP API's too.
    let status = client().get(server.url("/api/v1/tasks/over-http")).bearer_auth("t0ken").send().await.expect("get");
    assert_eq!(status.json::<Value>().await.expect("json")["status"], "completed");
    mcp.cancel().await.expect("close");
    assert!(server.stop().await.success());
}

/// Every path the OpenAPI document lists is routed (a path the router does not have answers
/// "no such route").
#[tokio::test]
async fn the_openapi_document_lists_what_is_served() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let (code, document) = get(&server, "/api/v1/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 8);
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            let concrete = path.replace("{id}", "1").replace("{task}", "1");
            let request = client().request(method.to_uppercase().parse().expect("method"), server.url(&concrete));
            let response = request.send().await.expect("send");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = body["error"].as_str().is_some_and(|e| e.starts_with("no such route"));
            assert!(!unrouted && status != StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {status} {body}");
        }
    }
    assert!(server.stop().await.success());
}

/// Clients that hold connections open doing nothing, and a burst of requests, leave the server
/// answering; the burst's requests each get an answer (done or 503), none is lost.
#[tokio::test]
async fn idle_connections_and_bursts_do_not_hold_the_server() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
        // Half a request line, never finished.
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /api/v1/ta").await.expect("write");
        idle.push(stream);
    }
    let (code, _) = get(&server, "/health").await;
    assert_eq!(code, StatusCode::OK);
    let burst: Vec<_> = (0..300)
        .map(|i| {
            let url = server.url("/api/v1/tasks");
            tokio::spawn(async move {
                let body = json!({"task_identifier": format!("t{i}"), "execution_prompt": "x"});
                client().post(url).json(&body).send().await.map(|r| r.status())
            })
        })
        .collect();
    let mut created = 0;
    for request in burst {
        match request.await.expect("join").expect("answered") {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(created > 0);
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM tasks"), created, "every 201 is a stored task, and only those");
    drop(idle);
    assert!(server.stop().await.success());
}

/// `claude-worker-inspect graph` prints the orchestration's graph with its states as Mermaid,
/// DOT and SVG (a well-formed XML document, checked by a real parser).
#[tokio::test]
async fn inspect_graph_prints_mermaid_dot_and_svg() {
    let env = Env::new();
    let client = env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({"name": "pics", "tasks": [
                {"identifier": "one", "execution_prompt": "x"},
                {"identifier": "two", "execution_prompt": "@auth", "depends_on": ["one"], "max_attempts": 1},
                {"identifier": "three", "execution_prompt": "x", "depends_on": ["two"]}
            ]}),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 30.0).await;
    client.stop().await;
    let mermaid = crate::harness::text(&env.inspect(&["graph", "pics"]).await.stdout);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains(":::completed") && mermaid.contains(":::failed") && mermaid.contains(":::skipped"));
    let ids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            format!("t{}", env.sql_count(&format!("SELECT task_id FROM tasks WHERE task_identifier = '{name}'")))
        })
        .collect();
    assert!(
        mermaid.contains(&format!("{} --> {}", ids[0], ids[1]))
            && mermaid.contains(&format!("{} --> {}", ids[1], ids[2]))
    );
    let dot = crate::harness::text(&env.inspect(&["graph", &id.to_string(), "--format", "dot"]).await.stdout);
    assert!(dot.starts_with("digraph orchestration {") && dot.contains(&format!("{} -> {};", ids[0], ids[1])), "{dot}");
    let output = env.inspect(&["graph", "pics", "--format", "svg"]).await;
    assert!(output.status.success());
    let mut parse = std::process::Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.read()); print(sum(1 for g in r.iter('{http://www.w3.org/2000/svg}g') if 'task' in g.get('class', '').split()))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(parse.stdin.as_mut().expect("stdin"), &output.stdout).expect("write");
    let parsed = parse.wait_with_output().expect("parsed");
    assert!(parsed.status.success(), "the SVG is well-formed XML");
    assert_eq!(crate::harness::text(&parsed.stdout).trim(), "3", "a box per task");
    let unknown = env.inspect(&["graph", "nope"]).await;
    assert!(!unknown.status.success());
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Opens the event stream on a raw connection.
async fn open_events(port: u16) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = format!("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.expect("send");
    stream
}

/// Reads from an event stream until `count` change events arrived in all (returns the new total).
async fn read_changes(stream: &mut tokio::net::TcpStream, seen: usize, count: usize) -> usize {
    let mut total = seen;
    let mut buffer = vec![0u8; 4096];
    while total < count {
        let n = tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncReadExt::read(stream, &mut buffer))
            .await
            .expect("an event in time")
            .expect("read");
        assert!(n > 0, "the stream ended");
        total += String::from_utf8_lossy(&buffer[..n]).matches("event: change").count();
    }
    total
}

/// A thousand dashboards following the event stream cost the server bounded memory; every one
/// hears of a change; clients that vanish mid-stream leave the rest served.
#[tokio::test]
async fn a_thousand_event_streams_stay_bounded_and_vanishing_clients_are_harmless() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let pid = server.child.id().expect("pid");
    let before = rss_kib(pid);
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(open_events(server.port).await);
    }
    // Each one's first event says where the stream starts.
    let mut seen = Vec::new();
    for stream in &mut streams {
        seen.push(read_changes(stream, 0, 1).await);
    }
    let (code, _) = post(&server, "/api/v1/tasks", json!({"task_identifier": "ping", "execution_prompt": "x"})).await;
    assert_eq!(code, StatusCode::CREATED);
    for (stream, seen) in streams.iter_mut().zip(seen.iter_mut()) {
        *seen = read_changes(stream, *seen, *seen + 1).await;
    }
    let with_streams = rss_kib(pid);
    let per_stream = (with_streams.saturating_sub(before)) as f64 / 1000.0;
    assert!(per_stream < 64.0, "{per_stream:.1} KiB a stream ({before} KiB before, {with_streams} KiB with 1,000)");
    // Half of them vanish without a word, in the middle of their streams.
    let kept = streams.split_off(500);
    drop(streams);
    let (code, _) = post(&server, "/api/v1/tasks", json!({"task_identifier": "pong", "execution_prompt": "x"})).await;
    assert_eq!(code, StatusCode::CREATED);
    let mut kept = kept;
    for (stream, seen) in kept.iter_mut().zip(seen[500..].iter()) {
        read_changes(stream, *seen, *seen + 1).await;
    }
    assert_eq!(get(&server, "/health").await.0, StatusCode::OK);
    drop(kept);
    // The server stops at once though clients were following it.
    assert!(server.stop().await.success());
}

/// The Python tool's README example 3, verbatim but for the address, run by Python with httpx
/// against the server: it submits the pipeline and polls until it completed.
#[tokio::test]
async fn the_python_tools_readme_example_runs_unchanged() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let example = include_str!("../fixtures/python-tool-example-3.py");
    assert!(example.contains("base_url=\"http://localhost:8000\""));
    let script = example.replace("http://localhost:8000", &format!("http://localhost:{}", server.port));
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .args(["-c", &script])
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .output(),
    )
    .await
    .expect("the example finished in time")
    .expect("python3");
    let said = crate::harness::text(&output.stdout);
    let problem = crate::harness::text(&output.stderr);
    assert!(
        !problem.contains("No module named 'httpx'"),
        "the example needs httpx: python3 -m pip install httpx (.ci/run installs it)"
    );
    assert!(output.status.success(), "{said}\n{problem}");
    assert_eq!(said.lines().last(), Some("Progress: 6/6"), "{said}");
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'"), 6);
    assert!(server.stop().await.success());
}
