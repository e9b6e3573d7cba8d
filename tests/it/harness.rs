//! The test harness: a temporary `CLAUDE_WORKER_HOME`, a fake `claude` written into it (see
//! `fake_claude.py`), the real `claude-worker` binary started as a child and driven with rmcp's
//! own client, and helpers to read what the fake CLI saw.
//!
//! The servers and workers a test starts write their stderr to a file in its temporary
//! directory ([`Env::stderr_log`]), not to the test run's: many tests make them fail on purpose
//! (crash points, a full database, taking back tasks), and a passing run stays quiet. When the
//! test fails, the file is printed with its failure (see `Drop for Env`).

#![expect(
    deprecated,
    reason = "roots are deprecated by SEP-2577, but Claude Code offers them and the server asks for them"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, ListRootsResult,
    ProgressNotificationParam, ProtocolVersion, ResourceUpdatedNotificationParam, Root,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

pub const SERVER: &str = env!("CARGO_BIN_EXE_claude-worker");
pub const INSPECT: &str = env!("CARGO_BIN_EXE_claude-worker-inspect");
const FAKE_CLAUDE: &str = include_str!("fake_claude.py");

/// One test's world: its own home, database, fake CLI and working directory.
pub struct Env {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub work: PathBuf,
    pub state: PathBuf,
    vars: Vec<(String, String)>,
    /// Where the processes of this test write their stderr (see [`Env::stderr_log`]).
    stderr_path: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        let work = root.join("work");
        let state = root.join("fake-state");
        for d in [&work, &state] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let claude = root.join("bin").join("claude");
        std::fs::create_dir_all(claude.parent().expect("parent")).expect("mkdir bin");
        std::fs::write(&claude, format!("#!/usr/bin/env python3\n{FAKE_CLAUDE}")).expect("write fake claude");
        make_executable(&claude);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let vars = vec![
            ("CLAUDE_WORKER_HOME".into(), home.display().to_string()),
            ("CLAUDE_WORKER_CLAUDE_BIN".into(), claude.display().to_string()),
            ("CLAUDE_WORKER_RETRY_BASE_SECONDS".into(), "0.05".into()),
            ("CLAUDE_WORKER_KILL_GRACE_SECONDS".into(), "0.5".into()),
            ("CLAUDE_WORKER_HEARTBEAT_SECONDS".into(), "0.5".into()),
            // A test run must not beep or pop up notifications at the developer; the feedback
            // tests turn them on (and point them at nothing).
            ("CLAUDE_WORKER_ENABLE_SOUNDS".into(), "false".into()),
            ("CLAUDE_WORKER_ENABLE_NOTIFICATIONS".into(), "false".into()),
            // A test that wants the detached worker turns it on; others must not leave one behind.
            ("CLAUDE_WORKER_DETACH_ON_EXIT".into(), "false".into()),
            ("FAKE_CLAUDE_STATE".into(), state.display().to_string()),
            ("FAKE_CLAUDE_FIXTURES".into(), fixtures.display().to_string()),
            // What the fake CLI starts as its MCP server (`@mcp-queue`, `@mcp-chain`).
            ("FAKE_CLAUDE_WORKER_BIN".into(), SERVER.into()),
            // A server started from inside Claude Code inherits this; the runner must drop it.
            ("CLAUDECODE".into(), "1".into()),
        ];
        let stderr_path = root.join("stderr.log");
        Env { _dir: dir, home, work, state, vars, stderr_path }
    }

    /// Sets an environment variable for every process this test starts.
    pub fn set(mut self, name: &str, value: &str) -> Env {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.join("tasks.db")
    }

    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command.current_dir(&self.work).kill_on_drop(true);
        // A test run inside a claude-worker task (its CLI's tag) must not make every server a
        // server inside a task.
        for name in [
            "CLAUDE_WORKER_DB",
            "CLAUDE_WORKER_LOG_DIR",
            "RUST_LOG",
            "CLAUDE_WORKER_MAX_CONCURRENT",
            "CLAUDE_WORKER_RUN",
            "CLAUDE_WORKER_MAX_DEPTH",
        ] {
            command.env_remove(name);
        }
        for (k, v) in &self.vars {
            command.env(k, v);
        }
        command
    }

    /// A stderr for a process this test starts: appended to the test's `stderr.log`, which is
    /// printed only if the test fails. (Commands run with `.output()` capture their own.)
    pub fn stderr_log(&self) -> std::process::Stdio {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open the test's stderr.log");
        std::process::Stdio::from(file)
    }

    /// The server as an rmcp transport, its stderr going to [`Env::stderr_log`].
    fn server_transport(&self) -> TokioChildProcess {
        self.server_transport_in(&self.work)
    }

    /// The server started in `dir` as an rmcp transport.
    fn server_transport_in(&self, dir: &Path) -> TokioChildProcess {
        let mut command = self.command(SERVER);
        command.current_dir(dir);
        let (transport, _stderr) =
            TokioChildProcess::builder(command).stderr(self.stderr_log()).spawn().expect("spawn claude-worker");
        transport
    }

    /// Starts the server in `dir` (as Claude Code starts it in a project), connected by a client
    /// that offers no roots.
    pub async fn server_in(&self, dir: &Path) -> Client {
        self.connect(self.server_transport_in(dir), TestClient::new(ProtocolVersion::V_2025_11_25)).await
    }

    /// Starts the server in the test's working directory, connected by a client that offers
    /// roots and lists `roots` (URIs) when asked.
    pub async fn server_with_roots(&self, roots: &[&str]) -> Client {
        let mut handler = TestClient::new(ProtocolVersion::V_2025_11_25);
        handler.config.capabilities = ClientCapabilities::builder().enable_roots().build();
        handler.roots = roots.iter().map(|r| (*r).to_owned()).collect();
        self.connect(self.server_transport(), handler).await
    }

    async fn connect(&self, transport: TokioChildProcess, handler: TestClient) -> Client {
        let pid = transport.id().and_then(|p| i32::try_from(p).ok()).expect("server pid");
        let service =
            handler.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");
        Client { service, pid }
    }

    /// Starts the server and connects with the `initialize` handshake at `version`.
    pub async fn server_with(&self, version: ProtocolVersion) -> Client {
        let transport = self.server_transport();
        let pid = transport.id().and_then(|p| i32::try_from(p).ok()).expect("server pid");
        let handler = TestClient::new(version);
        let service =
            handler.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");
        Client { service, pid }
    }

    /// Starts a server with one more environment variable than the test's, and connects.
    pub async fn server_with_var(&self, name: &str, value: &str) -> Client {
        let mut command = self.command(SERVER);
        command.env(name, value);
        let (transport, _stderr) =
            TokioChildProcess::builder(command).stderr(self.stderr_log()).spawn().expect("spawn claude-worker");
        let pid = transport.id().and_then(|p| i32::try_from(p).ok()).expect("server pid");
        let handler = TestClient::new(ProtocolVersion::V_2025_11_25);
        let service =
            handler.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await.expect("initialize");
        Client { service, pid }
    }

    /// Starts the server and connects with the `initialize` handshake (2025-11-25).
    pub async fn server(&self) -> Client {
        self.server_with(ProtocolVersion::V_2025_11_25).await
    }

    /// Starts the server and connects with the 2026-07-28 `server/discover` lifecycle.
    pub async fn server_discover(&self) -> Client {
        let transport = self.server_transport();
        let pid = transport.id().and_then(|p| i32::try_from(p).ok()).expect("server pid");
        let handler = TestClient::new(ProtocolVersion::V_2026_07_28);
        let service = handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
            )
            .await
            .expect("server/discover");
        Client { service, pid }
    }

    /// Runs the inspect CLI to completion.
    pub async fn inspect(&self, args: &[&str]) -> std::process::Output {
        let mut command = self.command(INSPECT);
        command.args(args);
        tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("inspect finished in time")
            .expect("run inspect")
    }

    /// What the fake CLI recorded: one `start` and one `end` line per run.
    pub fn invocations(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state.join("invocations.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("invocation line is JSON")).collect()
    }

    pub fn starts(&self) -> Vec<Value> {
        self.invocations().into_iter().filter(|v| v["event"] == "start").collect()
    }

    /// Opens the database directly, read-only, for assertions on what was stored.
    pub fn sql_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(self.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
        conn.query_row(sql, [], |row| row.get(0)).expect("query")
    }
}

impl Drop for Env {
    /// Every test ends with an audit of the history it left; a test that failed shows instead
    /// what its processes wrote on stderr.
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test runner shows what a failed test printed.
            if let Some(report) = self.stderr_report() {
                eprintln!("{report}");
            }
        } else if self.db_path().exists() {
            audit(&self.db_path());
        }
    }
}

impl Env {
    /// What the test's processes wrote on stderr (the end of it), framed for printing; `None`
    /// when they wrote nothing. Printed with a failed test's output.
    pub fn stderr_report(&self) -> Option<String> {
        const SHOWN: usize = 64 * 1024;
        let bytes = std::fs::read(&self.stderr_path).ok().filter(|b| !b.is_empty())?;
        let start = bytes.len().saturating_sub(SHOWN);
        let cut = if start > 0 { format!(", its last {SHOWN} bytes") } else { String::new() };
        Some(format!(
            "--- stderr of the processes this test started ({}{cut}) ---\n{}--- end of stderr ---",
            self.stderr_path.display(),
            String::from_utf8_lossy(&bytes[start..])
        ))
    }
}

/// Checks the invariants a user relies on over `task_events`: no completion without a claim of
/// that attempt, at most one accepted outcome per claim and one completion per task, no outcome
/// from a claim a newer claim superseded, no claim before every dependency completed, attempts
/// never above `max_attempts`, and a sound file.
pub fn audit(db: &Path) {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).expect(sql) };
    if count("SELECT count(*) FROM sqlite_schema WHERE name = 'task_events'") == 0 {
        return; // not a claude-worker database (a test of a foreign or newer file)
    }
    assert_eq!(
        count(
            "SELECT count(*) FROM task_events e WHERE e.kind = 'completed' AND NOT EXISTS (
                SELECT 1 FROM task_events c WHERE c.task_id = e.task_id AND c.kind = 'claimed'
                  AND c.attempt = e.attempt AND c.fence = e.fence AND c.owner = e.owner AND c.event_id < e.event_id)"
        ),
        0,
        "a completion without a claim of its attempt"
    );
    let outcomes = "('completed', 'failed', 'cancelled', 'retry_scheduled', 'released', 'reclaimed', 'usage_limited')";
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM task_events WHERE kind IN {outcomes} AND fence IS NOT NULL
             GROUP BY task_id, fence HAVING count(*) > 1)"
        )),
        0,
        "two outcomes accepted for one claim"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM task_events e WHERE e.kind IN {outcomes} AND e.fence IS NOT NULL AND EXISTS (
                SELECT 1 FROM task_events c WHERE c.task_id = e.task_id AND c.kind = 'claimed'
                  AND c.fence > e.fence AND c.event_id < e.event_id)"
        )),
        0,
        "an outcome accepted from a claim a newer claim had superseded"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT task_id FROM task_events WHERE kind = 'completed' GROUP BY task_id HAVING count(*) > 1)"
        ),
        0,
        "a task completed twice"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM task_events c JOIN task_dependencies d ON d.task_id = c.task_id
             WHERE c.kind = 'claimed' AND NOT EXISTS (
                 SELECT 1 FROM task_events e WHERE e.task_id = d.depends_on AND e.kind = 'completed'
                   AND e.event_id < c.event_id)"
        ),
        0,
        "a task claimed before all its dependencies completed"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM task_events e JOIN tasks t ON t.task_id = e.task_id
             WHERE e.kind = 'claimed' AND e.attempt > t.max_attempts"
        ),
        0,
        "an attempt above max_attempts"
    );
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("integrity");
    assert_eq!(integrity, "ok");
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The rmcp client side: forwards progress notifications to whoever subscribed, and records
/// resource notifications.
#[derive(Clone)]
pub struct TestClient {
    config: ClientConfig,
    pub progress: ProgressDispatcher,
    /// `updated <uri>` for each `notifications/resources/updated` and `list_changed` for each
    /// `notifications/resources/list_changed`, in the order they arrived.
    pub notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What `roots/list` answers (only asked when the capabilities offer roots).
    roots: Vec<String>,
}

impl TestClient {
    pub fn new(version: ProtocolVersion) -> Self {
        TestClient {
            config: ClientConfig::new(ClientCapabilities::default(), Implementation::new("claude-worker-tests", "0.1"))
                .with_protocol_version(version),
            progress: ProgressDispatcher::new(),
            notes: std::sync::Arc::default(),
            roots: Vec::new(),
        }
    }

    fn note(&self, note: String) {
        self.notes.lock().expect("notes").push(note);
    }
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _ctx: NotificationContext<RoleClient>) {
        self.progress.handle_notification(params).await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.note(format!("updated {}", params.uri));
    }

    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.note("list_changed".to_owned());
    }

    async fn list_roots(&self, _ctx: RequestContext<RoleClient>) -> Result<ListRootsResult, rmcp::ErrorData> {
        Ok(ListRootsResult::new(self.roots.iter().map(Root::new).collect()))
    }
}

/// A connected MCP client.
pub struct Client {
    pub service: RunningService<RoleClient, TestClient>,
    /// The server process.
    pub pid: i32,
}

impl Client {
    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let args = args.as_object().cloned().unwrap_or_default();
        tokio::time::timeout(
            Duration::from_secs(120),
            self.service.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)),
        )
        .await
        .unwrap_or_else(|_| panic!("{tool} answered in time"))
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// Calls a tool that must succeed; returns its structured content (checked against the text).
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let result = self.call(tool, args.clone()).await;
        let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
        assert_ne!(result.is_error, Some(true), "{tool}({args}) failed: {text}");
        let structured = result.structured_content.unwrap_or_else(|| panic!("{tool} has structuredContent"));
        let from_text: Value = serde_json::from_str(&text).expect("text content is the same JSON");
        assert_eq!(structured, from_text, "structuredContent and text agree");
        structured
    }

    /// Calls a tool that must fail with `isError: true`; returns the message.
    pub async fn err(&self, tool: &str, args: Value) -> String {
        let result = self.call(tool, args.clone()).await;
        let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
        assert_eq!(result.is_error, Some(true), "{tool}({args}) should fail, got {text}");
        text
    }

    /// Waits (with the `wait` tool) until a task is finished; panics after `seconds`.
    pub async fn wait_task(&self, task: &str, seconds: f64) -> Value {
        let status = self.ok("wait", json!({ "task": task, "timeout_seconds": seconds })).await;
        assert_eq!(status["timed_out"], false, "task {task} did not finish in {seconds} s: {status}");
        status
    }

    pub async fn wait_orchestration(&self, id: i64, seconds: f64) -> Value {
        let status = self.ok("wait", json!({ "orchestration_id": id, "timeout_seconds": seconds })).await;
        assert_eq!(status["timed_out"], false, "orchestration {id} did not finish in {seconds} s: {status}");
        status
    }

    pub async fn create(&self, identifier: &str, prompt: &str, extra: Value) -> Value {
        let mut args = json!({ "task_identifier": identifier, "execution_prompt": prompt });
        if let Value::Object(extra) = extra {
            args.as_object_mut().expect("object").extend(extra);
        }
        self.ok("create_task", args).await
    }

    /// The resource notifications recorded so far.
    pub fn notes(&self) -> Vec<String> {
        self.service.service().notes.lock().expect("notes").clone()
    }

    pub async fn stop(self) {
        let _ = self.service.cancel().await;
    }
}

/// The events of one task, oldest first, as `(kind, detail)`.
pub fn history(env: &Env, identifier: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(env.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT e.kind, coalesce(e.detail, '') FROM task_events e JOIN tasks t USING (task_id)
             WHERE t.task_identifier = ?1 ORDER BY e.event_id",
        )
        .expect("prepare");
    stmt.query_map([identifier], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// The task `identifier` among an orchestration status's `tasks`.
pub fn task_of<'a>(status: &'a Value, identifier: &str) -> &'a Value {
    status["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task_identifier"] == identifier)
        .unwrap_or_else(|| panic!("no task {identifier} in {status}"))
}

/// Polls `check` until it returns `Some`, at most `seconds`.
pub async fn eventually<T>(seconds: f64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The peak resident memory of a process (`VmHWM`), in KiB.
pub fn peak_memory_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// True while a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Runs a command to its end (at most 90 s).
pub async fn finished(command: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(90), command.output()).await.expect("finished in time").expect("run")
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until no server or worker is left on the database.
pub async fn no_executor_left(env: &Env) {
    let owners = claude_worker::owners::owners_dir(&env.db_path());
    eventually(30.0, "the background worker to exit", || {
        (std::fs::read_dir(&owners).map(|d| d.count()).unwrap_or(0) == 0).then_some(())
    })
    .await;
}

/// Runs a `claude-worker` that must refuse to start (its stdin closed): returns its output.
pub async fn run_to_refusal(command: &mut tokio::process::Command) -> std::process::Output {
    command.stdin(std::process::Stdio::null());
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the server exits at once")
        .expect("run the server")
}

/// What a refusal to start looks like: exit code not 0, nothing on stdout, one line on stderr
/// (`claude-worker: ...`). Returns that line.
pub fn refusal_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it refused to start: {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout: {:?}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("claude-worker: "), "{stderr}");
    stderr
}

/// A `claude-worker serve --http` of a test: its address, and the lines it said on stderr
/// up to its serving line (the token before it, when it made one). The rest of its stderr goes to the test's log.
pub struct HttpServer {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    pub said: Vec<String>,
}

impl Env {
    /// Starts `claude-worker serve --http ADDR` (port 0: any free one) and waits until it serves.
    pub async fn http_server(&self, addr: &str) -> HttpServer {
        use tokio::io::AsyncBufReadExt as _;
        let mut command = self.command(SERVER);
        command.args(["serve", "--http", addr]).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("spawn claude-worker serve --http");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let serving = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                said.push(line.clone());
                if let Some(rest) = line.split("serving http://").nth(1) {
                    return rest.split('/').next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .expect("the server says where it serves in time")
        .unwrap_or_else(|| panic!("the server did not start: {said:?}"));
        let port: u16 = serving.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        let mut log = tokio::fs::File::from_std(
            std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr_path).expect("stderr.log"),
        );
        tokio::spawn(async move {
            let mut rest = lines.into_inner();
            let _ = tokio::io::copy(&mut rest, &mut log).await;
        });
        HttpServer { child, base: format!("http://127.0.0.1:{port}"), port, said }
    }
}

impl HttpServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops it as a person's Ctrl-C does, and waits for it to exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT);
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.expect("exits in time").expect("wait")
    }
}
