//! Files under attack: a home or log directory another user can write to is refused before
//! anything is written, links planted where task logs go are never followed (the files they point
//! at stay as they were, byte for byte, and the server carries on), and what claude-worker
//! creates is private.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::harness::{Env, SERVER, eventually};

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).mode() & 0o7777
}

/// The names in a directory, sorted (empty when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs the server as this user with stdin closed, expecting it to refuse to start: exit code
/// not 0, nothing on stdout, one line on stderr. Returns that line.
async fn refused(env: &Env) -> String {
    let output = crate::harness::run_to_refusal(&mut env.command(SERVER)).await;
    crate::harness::refusal_line(&output)
}

#[tokio::test]
async fn a_home_other_users_can_write_to_is_refused_before_anything_is_written() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).expect("mkdir");
    let home = env.home.display().to_string();
    for mode in [0o777, 0o770, 0o1777] {
        set_mode(&env.home, mode);
        let message = refused(&env).await;
        assert!(message.contains("can be written by other users"), "{message}");
        // (Sticky and root's, it looks like /tmp, which is nobody's to close.)
        if mode & 0o1000 == 0 || !nix::unistd::geteuid().is_root() {
            assert!(message.contains(&format!("chmod 700 {home}")), "it says how to fix it: {message}");
        }
        assert!(message.contains("CLAUDE_WORKER_HOME"), "or where else to go: {message}");
        assert_eq!(names_in(&env.home), Vec::<String>::new(), "nothing written, not even the global log");
        assert_eq!(mode_of(&env.home), mode, "and its mode left as it was");
    }
    set_mode(&env.home, 0o777);
    // The inspect CLI refuses it too (it writes the global log).
    let output = env.inspect(&["list"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains(&format!("chmod 700 {home}")), "{stderr}");
    // doctor says what servers will do, and how to fix it.
    let doctor = env.inspect(&["doctor"]).await;
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success() && text.contains("servers refuse to start"), "{text}");
    assert!(text.contains(&format!("chmod 700 {home}")), "{text}");

    // A log directory of its own that others can write to: the same.
    let logs = env.work.join("shared-logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    set_mode(&logs, 0o777);
    set_mode(&env.home, 0o700);
    let with_logs = Env::new().set("CLAUDE_WORKER_LOG_DIR", &logs.display().to_string());
    let message = refused(&with_logs).await;
    assert!(message.contains("log directory") && message.contains("CLAUDE_WORKER_LOG_DIR"), "{message}");
    assert_eq!(names_in(&logs), Vec::<String>::new());
    assert!(!with_logs.home.exists(), "nor was the database created");

    // A database directly in a directory meant for everyone, like /tmp: refused too, without
    // advice that would close that directory to everyone else.
    let shared = std::env::temp_dir();
    if std::fs::metadata(&shared).is_ok_and(|m| m.mode() & 0o1002 == 0o1002 && m.uid() == 0) {
        let db = shared.join(format!("claude-worker-test-{}.db", std::process::id()));
        let in_tmp = Env::new().set("CLAUDE_WORKER_DB", &db.display().to_string());
        let message = refused(&in_tmp).await;
        assert!(message.contains(&format!("database directory {}", shared.display())), "{message}");
        assert!(message.contains("shared with other users") && !message.contains("chmod"), "{message}");
        assert!(!db.exists() && !in_tmp.home.exists(), "nothing written");
    }

    // Fixed as the message says, the home is used.
    let client = env.server().await;
    client.create("fine", "fine", json!({})).await;
    assert_eq!(client.wait_task("fine", 30.0).await["status"], "completed");
    client.stop().await;
}

#[tokio::test]
async fn a_home_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        // Only root can give a directory to another user.
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(&env.home).expect("mkdir");
    set_mode(&env.home, 0o700);
    std::os::unix::fs::chown(&env.home, Some(65534), Some(65534)).expect("chown");
    let message = refused(&env).await;
    assert!(message.contains("belongs to another user (uid 65534)"), "{message}");
    assert!(message.contains(&format!("chown root {}", env.home.display())), "it says how to fix it: {message}");
    assert_eq!(names_in(&env.home), Vec::<String>::new(), "nothing written");
    // Given back, it is used.
    std::os::unix::fs::chown(&env.home, Some(0), Some(0)).expect("chown back");
    let client = env.server().await;
    client.create("fine", "fine", json!({})).await;
    assert_eq!(client.wait_task("fine", 30.0).await["status"], "completed");
    client.stop().await;
}

/// A file someone wants overwritten, and what it held.
struct Precious {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Precious {
    fn new(dir: &Path, name: &str) -> Precious {
        let path = dir.join(name);
        let bytes = format!("{name}: this user's file, which no task log may touch\n").into_bytes();
        std::fs::write(&path, &bytes).expect("write");
        Precious { path, bytes }
    }

    fn assert_untouched(&self) {
        assert_eq!(std::fs::read(&self.path).expect("read"), self.bytes, "{} changed", self.path.display());
    }
}

#[tokio::test]
async fn links_planted_at_task_logs_are_never_followed_and_the_server_carries_on() {
    // A small cap, so that the third task's detailed log uses its tail segments.
    let env = Env::new().set("CLAUDE_WORKER_MAX_LOG_MB", "1");
    let tasks = env.home.join("tasks");
    std::fs::create_dir_all(&tasks).expect("mkdir");
    for dir in [&env.home, &tasks] {
        set_mode(dir, 0o700);
    }
    // What a user who could write there (before the home was made private) left behind.
    let summary = Precious::new(&env.work, "summary-target");
    let detailed = Precious::new(&env.work, "detailed-target");
    let tail = Precious::new(&env.work, "tail-target");
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, tasks.join(name)).expect("symlink");
    };
    link(&summary.path, "task_1_summary.log");
    link(&detailed.path, "task_2_detailed.log");
    link(&tail.path, "task_3_detailed.log.tail0");
    link(&tail.path, "task_3_detailed.log.tail1");

    let client = env.server().await;
    for (n, name, prompt) in
        [(1, "one", "one"), (2, "two", "two"), (3, "three", "three @lots=2"), (4, "four", "four @result=all well")]
    {
        let created = client.create(name, prompt, json!({})).await;
        assert_eq!(created["task_id"], n, "{created}");
    }
    for name in ["one", "two", "three", "four"] {
        assert_eq!(client.wait_task(name, 60.0).await["status"], "completed", "{name} ran despite the link");
    }
    for precious in [&summary, &detailed, &tail] {
        precious.assert_untouched();
    }
    assert!(tasks.join("task_1_summary.log").is_symlink() && tasks.join("task_2_detailed.log").is_symlink());
    // The links at the tail segments were removed (never followed), and the log joined as usual.
    assert!(!tasks.join("task_3_detailed.log.tail0").exists() && !tasks.join("task_3_detailed.log.tail1").exists());
    let third = std::fs::read_to_string(tasks.join("task_3_detailed.log")).expect("read");
    assert!(third.contains("bytes omitted"), "its head and tail kept");
    // The other logs of those tasks, and the next task's, are written as usual.
    assert!(std::fs::read_to_string(tasks.join("task_1_detailed.log")).expect("read").contains("\"type\":\"result\""));
    let second = std::fs::read_to_string(tasks.join("task_2_summary.log")).expect("read");
    assert!(second.contains("attempt 1/") && second.contains("the detailed log is not written"), "{second}");
    // Reading a task's log through the server does not follow the link either.
    let output = client.ok("get_task_output", json!({ "task": 1 })).await;
    assert!(!output.to_string().contains("summary-target:"), "{output}");
    let four = client.ok("get_task_output", json!({ "task": "four" })).await;
    assert!(four.to_string().contains("all well"), "{four}");
    // The global log says why a task's log is missing.
    let global = env.home.join("claude-worker.log");
    eventually(10.0, "the global log to name both links", || {
        let text = std::fs::read_to_string(&global).unwrap_or_default();
        let said = |name: &str| {
            text.lines().any(|l| l.contains(&tasks.join(name).display().to_string()) && l.contains("symbolic link"))
        };
        (said("task_1_summary.log") && said("task_2_detailed.log")).then_some(())
    })
    .await;
    client.stop().await;
    for precious in [&summary, &detailed, &tail] {
        precious.assert_untouched();
    }
}

#[tokio::test]
async fn a_link_planted_at_the_global_log_is_not_followed() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).expect("mkdir");
    set_mode(&env.home, 0o700);
    let precious = Precious::new(&env.work, "global-target");
    std::os::unix::fs::symlink(&precious.path, env.home.join("claude-worker.log")).expect("symlink");
    let client = env.server().await;
    client.create("fine", "fine", json!({})).await;
    assert_eq!(client.wait_task("fine", 30.0).await["status"], "completed", "it serves without its log");
    client.stop().await;
    precious.assert_untouched();
    let stderr = env.stderr_report().unwrap_or_default();
    assert!(stderr.contains("cannot open the global log") && stderr.contains("symbolic link"), "{stderr}");
}

#[tokio::test]
async fn what_claude_worker_creates_is_private() {
    let env = Env::new();
    let client = env.server().await;
    client.create("first", "first", json!({})).await;
    assert_eq!(client.wait_task("first", 30.0).await["status"], "completed");
    let db = env.db_path();
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    let tasks = env.home.join("tasks");
    // While the server lives: its owner lock too.
    let owners = with(".owners");
    let locks = names_in(&owners);
    assert_eq!(locks.len(), 1, "{locks:?}");
    let mut private = vec![
        (env.home.clone(), 0o700),
        (tasks.clone(), 0o700),
        (owners.clone(), 0o700),
        (owners.join(&locks[0]), 0o600),
        (db.clone(), 0o600),
        (with("-wal"), 0o600),
        (with("-shm"), 0o600),
        (env.home.join("claude-worker.log"), 0o600),
    ];
    for name in names_in(&tasks) {
        private.push((tasks.join(name), 0o600));
    }
    assert!(private.len() >= 10, "the task's two logs too: {private:?}");
    for (path, mode) in &private {
        assert_eq!(mode_of(path), *mode, "{}", path.display());
    }
    client.stop().await;

    // A home this user made readable by others (but not writable) is used as it is; a database
    // and log that others could read (an older version's, another tool's) are made private.
    set_mode(&env.home, 0o755);
    set_mode(&db, 0o644);
    set_mode(&env.home.join("claude-worker.log"), 0o644);
    let client = env.server().await;
    client.create("second", "second", json!({})).await;
    assert_eq!(client.wait_task("second", 30.0).await["status"], "completed");
    assert_eq!(mode_of(&env.home), 0o755, "the user's choice");
    for path in [&db, &with("-wal"), &with("-shm"), &env.home.join("claude-worker.log")] {
        assert_eq!(mode_of(path), 0o600, "{}", path.display());
    }
    client.stop().await;
}
