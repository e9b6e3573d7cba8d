//! Bad input on stdin, driven with raw JSON-RPC lines against the real server: each gets the
//! answer JSON-RPC and MCP ask for (or none, for a notification), and the server goes on to
//! answer the next valid request. A client that goes away by closing the server's stdout ends the
//! session cleanly, the running task put back in line.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::harness::{Env, SERVER, eventually};

/// The server, spoken to line by line.
struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    stderr: tokio::task::JoinHandle<String>,
    next_id: i64,
}

impl Raw {
    /// Starts the server and goes through `initialize`.
    async fn start(env: &Env) -> Raw {
        let mut raw = Raw::spawn(env);
        raw.initialize().await;
        raw
    }

    /// Starts the server without a handshake.
    fn spawn(env: &Env) -> Raw {
        let mut child = env
            .command(SERVER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Raw { child, stdin: Some(stdin), stdout: Some(stdout), stderr, next_id: 100 }
    }

    async fn initialize(&mut self) {
        let raw = self;
        let init = raw
            .request(
                "initialize",
                json!({"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "claude-worker", "{init}");
        raw.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string()).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write to the server");
        stdin.write_all(b"\n").await.expect("write to the server");
        stdin.flush().await.expect("flush");
    }

    async fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes()).await;
    }

    /// Reads stdout up to the answer with this id (null for an error that has none). Any other
    /// answer on the way is a failure: each test waits for one answer at a time.
    async fn answer(&mut self, id: &Value) -> Value {
        let stdout = self.stdout.as_mut().expect("stdout open");
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer with id {id} in time"))
                .expect("read stdout")
                .unwrap_or_else(|| panic!("stdout ended before the answer with id {id}"));
            let message: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.300}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line:.300}");
            match message.get("id") {
                None => continue, // a notification (progress)
                Some(got) if got == id => return message,
                Some(_) => panic!("expected the answer with id {id}, got {line:.300}"),
            }
        }
    }

    /// Sends one line and returns the error it is answered with.
    async fn error_for(&mut self, line: &[u8], id: &Value) -> Value {
        self.send_bytes(line).await;
        let answer = self.answer(id).await;
        assert!(answer.get("result").is_none(), "{answer}");
        answer["error"].clone()
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()).await;
        self.answer(&json!(id)).await
    }

    /// Calls a tool; returns its result (`isError` or not).
    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self.request("tools/call", json!({"name":tool,"arguments":arguments})).await;
        answer.get("result").cloned().unwrap_or_else(|| panic!("{tool} answered with an error: {answer}"))
    }

    /// Calls a tool that must fail with `isError: true`; returns its text.
    async fn call_err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], true, "{tool}({}) should fail: {}", short(&arguments), short(&result));
        result["content"][0]["text"].as_str().expect("text").to_owned()
    }

    /// The server still answers: tools/list lists the nine tools.
    async fn alive(&mut self) {
        let answer = self.request("tools/list", json!({})).await;
        assert_eq!(answer["result"]["tools"].as_array().map(Vec::len), Some(9), "{}", short(&answer));
    }

    /// Closes stdin and waits for the server to exit; returns its stderr.
    async fn close(mut self) -> String {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits after stdin closes")
            .expect("status");
        assert!(status.success(), "{status:?}");
        let stderr = self.stderr.await.expect("stderr");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

/// At most 300 characters of a value, for failure messages about 10 MiB arguments.
fn short(value: &Value) -> String {
    value.to_string().chars().take(300).collect()
}

fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_else(|| panic!("error has a message: {error}"))
}

#[tokio::test]
async fn a_line_that_is_not_json_is_a_parse_error() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    for line in [&b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"[..], b"not json", b"{'single': 'quotes'}", b"\xff\xfe{}"]
    {
        let error = raw.error_for(line, &Value::Null).await;
        assert_eq!(error["code"], -32700, "{}: {error}", String::from_utf8_lossy(line));
        assert!(message(&error).starts_with("Parse error: "), "{error}");
        raw.alive().await;
    }
    raw.close().await;
}

#[tokio::test]
async fn garbage_before_initialize_does_not_end_the_session() {
    let env = Env::new();
    let mut raw = Raw::spawn(&env);
    raw.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string()).await;
    raw.send(&json!({"jsonrpc":"2.0","id":7,"result":{}}).to_string()).await;
    let error = raw.error_for(b"not json", &Value::Null).await;
    assert_eq!(error["code"], -32700, "{error}");
    raw.initialize().await;
    raw.alive().await;
    raw.close().await;
}

#[tokio::test]
async fn json_that_is_not_json_rpc_is_an_invalid_request() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    for (line, id) in [
        (r#"{"foo":1}"#, Value::Null),
        ("[]", Value::Null),
        (r#"[{"jsonrpc":"2.0","id":5,"method":"ping"}]"#, Value::Null),
        ("42", Value::Null),
        (r#"{"id":7,"method":"tools/list"}"#, json!(7)),
        (r#"{"jsonrpc":"1.0","id":"eight","method":"tools/list"}"#, json!("eight")),
        (r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":7}"#, json!(9)),
    ] {
        let error = raw.error_for(line.as_bytes(), &id).await;
        assert_eq!(error["code"], -32600, "{line}: {error}");
        assert!(message(&error).starts_with("Invalid Request"), "{error}");
        raw.alive().await;
    }
    raw.close().await;
}

#[tokio::test]
async fn unknown_methods_tools_and_params_are_json_rpc_errors() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let unknown = raw.request("no/such/method", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    raw.alive().await;
    // MCP: an unknown tool is a protocol error, Invalid params.
    let tool = raw.request("tools/call", json!({"name":"no_such_tool","arguments":{}})).await;
    assert_eq!(tool["error"]["code"], -32602, "{tool}");
    raw.alive().await;
    // tools/call without a tool name: Invalid params too (rmcp alone would say Method not found).
    let nameless = raw.request("tools/call", json!({"arguments":{}})).await;
    assert_eq!(nameless["error"]["code"], -32602, "{nameless}");
    assert!(message(&nameless["error"]).contains("name"), "{nameless}");
    raw.alive().await;
    // A notification is never answered, even an unknown one: the next answer is the next request's.
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/no_such_thing"}"#).await;
    raw.send(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#).await;
    raw.alive().await;
    raw.close().await;
}

#[tokio::test]
async fn arguments_of_the_wrong_type_name_the_field() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    for (arguments, field) in [
        (json!({"task_identifier": 5, "execution_prompt": "x"}), "task_identifier"),
        (json!({"task_identifier": "a", "execution_prompt": ["x"]}), "execution_prompt"),
        (json!({"task_identifier": "a", "execution_prompt": "x", "priority": "high"}), "priority"),
        (json!({"task_identifier": "a", "execution_prompt": "x", "depends_on": {"b": true}}), "depends_on"),
        (json!({"task_identifier": "a", "execution_prompt": "x", "max_attempts": -1}), "max_attempts"),
    ] {
        let text = raw.call_err("create_task", arguments.clone()).await;
        assert!(text.contains(field), "{arguments}: {text}");
        raw.alive().await;
    }
    let text = raw.call_err("wait", json!({"task": "a", "timeout_seconds": "soon"})).await;
    assert!(text.contains("timeout_seconds"), "{text}");
    raw.alive().await;
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0);
    raw.close().await;
}

#[tokio::test]
async fn nul_bytes_are_refused_naming_the_field() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let task = |extra: Value| {
        let mut arguments = json!({"task_identifier": "nul", "execution_prompt": "hello"});
        arguments.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        arguments
    };
    // The prompt goes to claude's stdin, but a NUL in it is surely a mistake: refused too.
    let work = env.work.display().to_string();
    for (extra, field) in [
        (json!({"execution_prompt": "before\u{0}after"}), "execution_prompt"),
        (json!({"model": "son\u{0}net"}), "model"),
        (json!({"system_prompt": "be\u{0}brief"}), "system_prompt"),
        (json!({"append_system_prompt": "\u{0}"}), "append_system_prompt"),
        (json!({"allowed_tools": ["Edit", "Bash(\u{0})"]}), "allowed_tools"),
        (json!({"disallowed_tools": ["\u{0}Write"]}), "disallowed_tools"),
        (json!({"working_directory": format!("{work}\u{0}/x")}), "working_directory"),
        (json!({"permission_mode": "acceptEdits\u{0}"}), "permission_mode"),
    ] {
        let text = raw.call_err("create_task", task(extra.clone())).await;
        assert!(text.contains(field) && text.contains("NUL"), "{extra}: {text}");
        raw.alive().await;
    }
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0, "nothing stored");
    // The same task without the NUL is stored and runs.
    let created = raw.call("create_task", task(json!({}))).await;
    assert_ne!(created["isError"], true, "{created}");
    let done = raw.call("wait", json!({"task": "nul", "timeout_seconds": 30})).await;
    assert_eq!(done["structuredContent"]["status"], "completed", "{done}");
    raw.close().await;
}

#[tokio::test]
async fn a_10_mib_prompt_is_refused_and_nothing_is_stored() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let prompt = "x".repeat(10 * 1024 * 1024);
    let text = raw.call_err("create_task", json!({"task_identifier": "huge", "execution_prompt": prompt})).await;
    assert!(text.contains("CLAUDE_WORKER_MAX_PROMPT_BYTES") && text.contains("10485760 bytes"), "{text}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0, "nothing stored");
    raw.alive().await;
    let created = raw.call("create_task", json!({"task_identifier": "small", "execution_prompt": "hello"})).await;
    assert_ne!(created["isError"], true, "{created}");
    let done = raw.call("wait", json!({"task": "small", "timeout_seconds": 30})).await;
    assert_eq!(done["structuredContent"]["status"], "completed", "{done}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 1);
    raw.close().await;
}

#[tokio::test]
async fn a_line_over_64_mib_is_refused_without_being_kept() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let mut line = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""#.to_vec();
    line.resize(65 * 1024 * 1024, b'x');
    line.extend_from_slice(br#""}}"#);
    let error = raw.error_for(&line, &Value::Null).await;
    assert_eq!(error["code"], -32600, "{error}");
    assert!(message(&error).contains("over the limit"), "{error}");
    raw.alive().await;
    raw.close().await;
}

#[tokio::test]
async fn a_closed_stdout_ends_the_session_cleanly() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let created =
        raw.call("create_task", json!({"task_identifier": "long", "execution_prompt": "long @sleep=30"})).await;
    assert_ne!(created["isError"], true, "{created}");
    eventually(20.0, "the task to start", || (!env.starts().is_empty()).then_some(())).await;
    // The client dies: the read end of the server's stdout is closed, its stdin stays open.
    drop(raw.stdout.take());
    raw.send(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string()).await;
    let status = tokio::time::timeout(Duration::from_secs(15), raw.child.wait())
        .await
        .expect("exits promptly once stdout is closed")
        .expect("status");
    assert!(status.success(), "{status:?}");
    let stderr = raw.stderr.await.expect("stderr");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The same shutdown as at the end of stdin: the attempt was stopped and put back in line.
    let log = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    assert!(log.contains("stdout is closed"), "{log}");
    assert!(log.contains("claude-worker shutting down"), "{log}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'pending' AND attempt = 0"), 1);
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'released'"), 1);
}

#[tokio::test]
async fn a_request_that_reuses_an_id_in_flight_is_answered_with_an_error_and_the_first_still_answers() {
    let env = Env::new();
    let mut raw = Raw::start(&env).await;
    let created =
        raw.call("create_task", json!({"task_identifier": "slow", "execution_prompt": "slow @sleep=2"})).await;
    assert_ne!(created["isError"], true, "{created}");
    let wait = |id: i64| {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
               "params":{"name":"wait","arguments":{"task":"slow","timeout_seconds":30}}})
        .to_string()
    };
    raw.send(&wait(7)).await;
    // The same id while the first is still waiting: refused at once, with that id.
    let error = raw.error_for(wait(7).as_bytes(), &json!(7)).await;
    assert_eq!(error["code"], -32600, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("still in flight")), "{error}");
    // The first call still gets its answer.
    let answer = raw.answer(&json!(7)).await;
    assert_eq!(answer["result"]["structuredContent"]["status"], "completed", "{}", short(&answer));
    // Once answered, the id may be used again.
    raw.send(&json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}).to_string()).await;
    let again = raw.answer(&json!(7)).await;
    assert!(again["result"]["tools"].is_array(), "{}", short(&again));
    raw.close().await;
}
