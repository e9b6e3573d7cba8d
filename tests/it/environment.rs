//! Bad environments: each gets a clear error, the server stays alive for the next request where
//! it can run at all, and nothing is lost. The database: read-only, in a directory that cannot
//! be made, corrupt, full. What a task prints: a gibibyte, invalid UTF-8, one enormous line, a
//! CLI that closes its output and goes on. The CLI itself: missing, not executable.

use std::path::Path;

use serde_json::json;

use crate::harness::{Env, SERVER, eventually, peak_memory_kib};

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test]
async fn a_task_that_prints_a_gibibyte_leaves_the_server_small_and_its_log_capped() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "2");
    let client = env.server().await;
    let started = std::time::Instant::now();
    client.create("flood", "flood @flood=1024", json!({})).await;
    let status = client.wait_task("flood", 300.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    let elapsed = started.elapsed();
    let peak = peak_memory_kib(client.pid);
    eprintln!("1 GiB of stream-json lines in {elapsed:.1?}: server peak memory {} MiB", peak / 1024);
    assert!(peak < 100 * 1024, "the server's peak memory is {peak} KiB");
    let detailed = status["detailed_log"].as_str().expect("path");
    let len = file_len(Path::new(detailed));
    assert!(len <= 2 * 1024 * 1024 + 4096, "the detailed log is capped: {len} bytes");
    let log = std::fs::read(detailed).expect("log");
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("\"subtype\":\"init\"") && text.contains("\"type\":\"result\""), "head and tail kept");
    let summary_path = status["summary_log"].as_str().expect("path").to_owned();
    let summary = std::fs::read_to_string(&summary_path).expect("summary");
    assert!(summary.len() < 2 * 1024 * 1024, "the summary log stays small too: {} bytes", summary.len());
    assert!(summary.contains("Bash: step 000000000"), "the first steps are summarised");
    assert!(summary.contains("more steps than the summary keeps"), "and the summary says where the rest is");
    client.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_the_output_does_not_disturb_the_run() {
    let env = Env::new();
    let client = env.server().await;
    client.create("mangled", "mangled @badutf8", json!({})).await;
    let status = client.wait_task("mangled", 30.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"], "bad \u{fffd} byte, then fine", "the bad byte is replaced, the rest kept");
    let log = std::fs::read(status["detailed_log"].as_str().expect("path")).expect("log");
    assert!(log.windows(4).any(|w| w == b"\xff\xfe n"), "the detailed log keeps the bytes as printed");
    let output = client.ok("get_task_output", json!({ "task": "mangled" })).await;
    assert_eq!(output["result"], status["result"], "{output}");
    client.stop().await;
}

#[tokio::test]
async fn one_enormous_line_is_cut_and_the_run_goes_on() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "1");
    let client = env.server().await;
    client.create("wide", "wide @longline=200 @result=after the long line", json!({})).await;
    let status = client.wait_task("wide", 120.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"], "after the long line");
    let peak = peak_memory_kib(client.pid);
    eprintln!("a line of 200 MiB: server peak memory {} MiB", peak / 1024);
    assert!(peak < 100 * 1024, "the server's peak memory is {peak} KiB");
    let detailed = Path::new(status["detailed_log"].as_str().expect("path")).to_owned();
    let len = file_len(&detailed);
    assert!(len <= 1024 * 1024 + 4096, "the detailed log is capped: {len} bytes");
    let log = String::from_utf8_lossy(&std::fs::read(&detailed).expect("log")).into_owned();
    assert!(log.contains("line cut") || log.contains("not kept"), "the cut is said");
    assert!(log.contains("after the long line"), "what follows the long line is logged");
    client.stop().await;
}

#[tokio::test]
async fn a_cli_that_closes_its_output_and_goes_on_ends_clearly() {
    let env = Env::new();
    let client = env.server().await;
    // It closes stdout, works on for a while, and exits without a result.
    client.create("quiet", "quiet @close-stdout=1.5", json!({})).await;
    // It closes both stdout and stderr and would go on for a minute: its timeout stops it.
    client.create("mute", "mute @close-output=60", json!({ "timeout_seconds": 2 })).await;
    let started = std::time::Instant::now();
    let quiet = client.wait_task("quiet", 30.0).await;
    assert_eq!(quiet["status"], "failed", "{quiet}");
    assert_eq!(quiet["error"]["kind"], "cli_error", "{quiet}");
    let message = quiet["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("without writing a result") && message.contains("closed its standard output"),
        "{message}"
    );
    let mute = client.wait_task("mute", 30.0).await;
    assert_eq!(mute["status"], "failed", "{mute}");
    assert_eq!(mute["error"]["kind"], "timeout", "{mute}");
    assert!(started.elapsed().as_secs_f64() < 15.0, "no hang beyond the timeout and the stop sequence");
    eventually(5.0, "the muted CLI to be gone", || {
        let ended = env.invocations().iter().filter(|v| v["event"] == "end").count();
        (ended == 2).then_some(())
    })
    .await;
    client.stop().await;
}

#[tokio::test]
async fn a_claude_binary_that_cannot_run_fails_the_task_clearly() {
    let env = Env::new();
    let root = env.home.parent().expect("root").to_owned();
    let not_executable = root.join("bin/claude-0644");
    std::fs::copy(root.join("bin/claude"), &not_executable).expect("copy");
    set_mode(&not_executable, 0o644);
    let bad_interpreter = root.join("bin/claude-bad-interpreter");
    std::fs::write(&bad_interpreter, "#!/nonexistent/python9\n").expect("write");
    set_mode(&bad_interpreter, 0o755);
    for (bin, kind, hint) in
        [(&not_executable, "claude_not_executable", "chmod +x"), (&bad_interpreter, "claude_not_found", "interpreter")]
    {
        let env = Env::new().set("CLAUDE_WORKER_CLAUDE_BIN", &bin.display().to_string());
        let client = env.server().await;
        client.create("cannot", "x", json!({})).await;
        let status = client.wait_task("cannot", 30.0).await;
        assert_eq!(status["status"], "failed", "{status}");
        assert_eq!(status["error"]["kind"], kind, "{status}");
        let message = status["error"]["message"].as_str().expect("message");
        assert!(message.contains(hint) && message.contains("CLAUDE_WORKER_CLAUDE_BIN"), "{message}");
        assert_eq!(status["attempt"], 1, "not retried");
        // The server is still there for the next request.
        client.ok("list_tasks", json!({})).await;
        client.stop().await;
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---- the database ----

/// The user a test runs the server as when it runs as root, for whom permissions do not count.
const UNPRIVILEGED: u32 = 65534;

fn is_root() -> bool {
    // The effective uid: the second number of the `Uid:` line.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
}

/// Hands `paths` (recursively) to the user the server will run as.
fn give_away(paths: &[&Path]) {
    if !is_root() {
        return;
    }
    for path in paths {
        chown_all(path, UNPRIVILEGED);
    }
}

fn chown_all(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_all(&entry.expect("entry").path(), uid);
        }
    }
}

/// Runs the server (as an unprivileged user, owner of the test's files, when the tests run as
/// root) with stdin closed, expecting it to refuse to start: exit code not 0, nothing on stdout,
/// one line on stderr. Returns that line.
async fn refused(env: &Env) -> String {
    let mut command = if is_root() {
        let root = env.home.parent().expect("root");
        give_away(&[root]);
        // The build's directory may be closed to that user (a clone in a 0700 directory): run
        // a link to the binary from the test's own directory, which the user now owns.
        let exe = root.join("claude-worker");
        if !exe.exists() && std::fs::hard_link(SERVER, &exe).is_err() {
            std::fs::copy(SERVER, &exe).expect("copy the server binary");
        }
        let mut command = env.command(exe.to_str().expect("a UTF-8 path"));
        command.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
        command
    } else {
        env.command(SERVER)
    };
    let output = crate::harness::run_to_refusal(&mut command).await;
    if is_root() {
        // Given back: a server run as root afterwards would refuse a home another user owns.
        chown_all(env.home.parent().expect("root"), 0);
    }
    crate::harness::refusal_line(&output)
}

/// A test's world where the server may run unprivileged: the global log goes to a directory of
/// its own, so that a database directory made read-only does not take the log with it.
fn shared_env() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let root = env.home.parent().expect("root").to_owned();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir logs");
    let env = env.set("CLAUDE_WORKER_LOG_DIR", &logs.display().to_string());
    (env, root)
}

/// Runs a server that creates the database and completes one task in it, and waits for it to exit.
async fn make_database(env: &Env) {
    let client = env.server().await;
    client.create("kept", "kept", json!({})).await;
    assert_eq!(client.wait_task("kept", 30.0).await["status"], "completed");
    let pid = client.pid;
    client.stop().await;
    eventually(10.0, "the server to exit", || (!crate::harness::alive(pid)).then_some(())).await;
    // Everything in the main file, nothing left in a WAL: a page overwritten there counts.
    let conn = rusqlite::Connection::open(env.db_path()).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
}

#[tokio::test]
async fn a_read_only_database_or_directory_is_refused_untouched() {
    let (env, root) = shared_env();
    make_database(&env).await;
    let db = env.db_path();
    set_mode(&db, 0o444);
    let before = std::fs::read(&db).expect("read");
    let message = refused(&env).await;
    assert!(message.contains("is read-only") && message.contains("chmod u+w"), "{message}");
    assert!(message.contains(&db.display().to_string()), "it names the file: {message}");
    assert_eq!(std::fs::read(&db).expect("read"), before, "the file is untouched");

    // A writable file in a directory that is not: SQLite could not make its -wal and -shm files.
    let ro_dir = root.join("read-only");
    std::fs::create_dir_all(&ro_dir).expect("mkdir");
    let ro_db = ro_dir.join("tasks.db");
    std::fs::copy(&db, &ro_db).expect("copy");
    set_mode(&ro_db, 0o600);
    set_mode(&ro_dir, 0o555);
    let env = env.set("CLAUDE_WORKER_DB", &ro_db.display().to_string());
    let message = refused(&env).await;
    assert!(message.contains("directory") && message.contains("not writable"), "{message}");
    assert!(message.contains("-wal") && message.contains("CLAUDE_WORKER_DB"), "{message}");
    assert_eq!(std::fs::read(&ro_db).expect("read"), before, "the file is untouched");
    set_mode(&ro_dir, 0o755);
    set_mode(&db, 0o600);
}

#[tokio::test]
async fn the_database_directory_is_created_or_its_failure_explained() {
    let (env, root) = shared_env();
    let deep = root.join("not/yet/there/tasks.db");
    let env = env.set("CLAUDE_WORKER_DB", &deep.display().to_string());
    let client = env.server().await;
    client.create("first", "first", json!({})).await;
    assert_eq!(client.wait_task("first", 30.0).await["status"], "completed");
    client.stop().await;
    assert!(deep.is_file());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(deep.parent().expect("dir")).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "created private");
    crate::harness::audit(&deep);

    // Under a file: no directory can be made there.
    let file = root.join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let env = env.set("CLAUDE_WORKER_DB", &file.join("sub/tasks.db").display().to_string());
    let message = refused(&env).await;
    assert!(message.contains("cannot create the directory") && message.contains("Not a directory"), "{message}");
    assert!(message.contains("CLAUDE_WORKER_DB"), "it says what to change: {message}");

    // Under a directory this user may not write to.
    let locked = root.join("locked");
    std::fs::create_dir_all(&locked).expect("mkdir");
    set_mode(&locked, 0o500);
    let env = env.set("CLAUDE_WORKER_DB", &locked.join("sub/tasks.db").display().to_string());
    let message = refused(&env).await;
    assert!(message.contains("cannot create the directory") && message.contains("Permission denied"), "{message}");
    assert!(!locked.join("sub").exists());
    set_mode(&locked, 0o755);
}

/// Bytes that are not a database, the same each run.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn a_corrupt_database_is_refused_and_never_overwritten() {
    // A file of random bytes.
    let (env, _root) = shared_env();
    std::fs::create_dir_all(&env.home).expect("home");
    let db = env.db_path();
    std::fs::write(&db, noise(64 * 1024)).expect("write");
    let before = std::fs::read(&db).expect("read");
    let message = refused(&env).await;
    assert!(message.contains("is corrupt") && message.contains("Restore it from a backup"), "{message}");
    assert!(message.contains("move it away") && message.contains(".corrupt"), "{message}");
    assert_eq!(std::fs::read(&db).expect("read"), before, "never overwritten");

    // A sound database whose table of tasks has a page overwritten.
    std::fs::remove_file(&db).expect("rm");
    make_database(&env).await;
    let page: u64 = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'tasks'", [], |row| row.get(0)).expect("page")
    };
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&db).expect("open");
        file.seek(SeekFrom::Start((page - 1) * 4096)).expect("seek");
        file.write_all(&noise(4096)).expect("overwrite");
    }
    let before = std::fs::read(&db).expect("read");
    let message = refused(&env).await;
    assert!(message.contains("is corrupt") && message.contains("Restore it from a backup"), "{message}");
    assert_eq!(std::fs::read(&db).expect("read"), before, "never overwritten");
    // The audit at the end of the test would find it corrupt too.
    std::fs::remove_file(&db).expect("rm");
}

/// Fills the database from another connection up to a number of pages, and frees them again.
struct Filler {
    conn: rusqlite::Connection,
}

impl Filler {
    fn new(db: &Path) -> Filler {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
        conn.execute_batch("CREATE TABLE IF NOT EXISTS filler (x BLOB)").expect("filler table");
        Filler { conn }
    }

    fn pages(&self, pragma: &str) -> i64 {
        self.conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0)).expect("pragma")
    }

    /// Grows the file to `pages` pages with no free page left in it.
    fn fill_to(&self, pages: i64) {
        while self.pages("page_count") < pages || self.pages("freelist_count") > 0 {
            self.conn.execute("INSERT INTO filler VALUES (zeroblob(3000))", []).expect("fill");
        }
    }

    /// Frees what the filler took: its pages can be used again without growing the file.
    fn free(&self) {
        self.conn.execute("DELETE FROM filler", []).expect("free");
    }
}

#[tokio::test]
async fn a_full_database_refuses_a_task_whole_and_takes_the_next_once_space_is_back() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_DB_PAGES", "300");
    let client = env.server().await;
    let filler = Filler::new(&env.db_path());
    filler.fill_to(300);
    // A prompt of 64 KiB needs pages the database may not grow.
    let prompt = format!("big {}", "p".repeat(64 * 1024));
    let args = json!({ "task_identifier": "big", "execution_prompt": prompt, "orchestration": "nightly" });
    let message = client.err("create_task", args.clone()).await;
    assert!(message.contains("is full") && message.contains("Nothing of this change was written"), "{message}");
    assert!(message.contains("free disk space") && message.contains("CLAUDE_WORKER_MAX_DB_PAGES"), "{message}");
    for table in ["tasks", "task_events", "orchestrations", "task_dependencies"] {
        assert_eq!(env.sql_count(&format!("SELECT count(*) FROM {table}")), 0, "nothing half-written in {table}");
    }
    // The server is alive and answers.
    assert_eq!(client.ok("list_tasks", json!({})).await["count"], 0);

    filler.free();
    let created = client.ok("create_task", args).await;
    assert_eq!(created["status"], "pending", "{created}");
    assert_eq!(client.wait_task("big", 30.0).await["status"], "completed");
    assert_eq!(env.starts()[0]["prompt_len"].as_u64(), Some(prompt.len() as u64));
    client.stop().await;
}

#[tokio::test]
async fn an_outcome_met_by_a_full_database_is_written_once_space_is_back() {
    let env = Env::new().set("CLAUDE_WORKER_MAX_DB_PAGES", "300");
    let client = env.server().await;
    // Its result needs new pages when it is written.
    let result = "r".repeat(40 * 1024);
    client.create("late", &format!("late @sleep=1 @result={result}"), json!({})).await;
    eventually(20.0, "the task to start", || (!env.starts().is_empty()).then_some(())).await;
    let filler = Filler::new(&env.db_path());
    filler.fill_to(300);
    let log = env.home.join("claude-worker.log");
    eventually(30.0, "the executor to meet the full database", || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.contains("cannot record the outcome yet") && text.contains("is full")).then_some(())
    })
    .await;
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks WHERE status = 'running'"), 1, "not recorded yet");
    filler.free();
    let status = client.wait_task("late", 60.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"].as_str().map(str::len), Some(result.len()), "the whole result is kept");
    assert_eq!(env.sql_count("SELECT count(*) FROM task_events WHERE kind = 'completed'"), 1);
    // And the server goes on taking tasks.
    client.create("after", "after", json!({})).await;
    assert_eq!(client.wait_task("after", 30.0).await["status"], "completed");
    client.stop().await;
}
