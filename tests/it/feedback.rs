//! Sounds and desktop notifications, seen through the feedback log (`CLAUDE_WORKER_FEEDBACK_LOG`):
//! one JSON line per sound the server played and per notification it showed. The server really
//! tries to play and show them; here audio goes to ALSA's null device (players that reach a sound
//! server are pointed at none) and D-Bus at a bus that does not exist, so a test run is silent.
//! With the `native-audio` feature the sounds really play, in-process, through that null device.
//! One test runs a private D-Bus session bus with a stand-in notification service, to see the
//! notifications really delivered.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Env, alive, eventually};

/// An ALSA configuration whose default output is the null device.
const NULL_ALSA: &str = "pcm.!default { type null }\nctl.!default { type hw card 0 }\n";

struct Feedback {
    env: Env,
    log: PathBuf,
    dir: PathBuf,
}

fn feedback_env() -> Feedback {
    let env = Env::new();
    let dir = env.home.parent().expect("root").join("feedback");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let alsa = dir.join("asound.conf");
    std::fs::write(&alsa, NULL_ALSA).expect("write the ALSA configuration");
    let log = dir.join("feedback.jsonl");
    let env = env
        .set("CLAUDE_WORKER_ENABLE_SOUNDS", "true")
        .set("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "yes")
        .set("CLAUDE_WORKER_FEEDBACK_LOG", &log.display().to_string())
        .set("ALSA_CONFIG_PATH", &alsa.display().to_string())
        .set("PULSE_SERVER", "unix:/nonexistent/pulse")
        .set("PIPEWIRE_REMOTE", "/nonexistent/pipewire")
        .set("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    Feedback { env, log, dir }
}

fn lines(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("a feedback line is JSON")).collect()
}

fn of_kind(log: &Path, kind: &str) -> Vec<Value> {
    lines(log).into_iter().filter(|l| l["kind"] == kind).collect()
}

/// Waits until the log holds a line of `kind` for `event` and returns it.
async fn line_for(log: &Path, kind: &str, event: &str) -> Value {
    eventually(20.0, &format!("a {kind} for {event}"), || of_kind(log, kind).into_iter().find(|l| l["event"] == event))
        .await
}

/// Stops the server and waits for its process to end: nothing more can be written after.
async fn stop(client: crate::harness::Client) {
    let pid = client.pid;
    client.stop().await;
    eventually(20.0, "the server exited", || (!alive(pid)).then_some(())).await;
}

/// Where a sound could really play, it did: in-process with the `native-audio` feature, else
/// through `aplay` when it is installed (the players tried before it reach no sound server here).
/// Elsewhere the line says why it could not.
fn check_played(sound: &Value) {
    if cfg!(feature = "native-audio") {
        assert_eq!(sound["backend"], "rodio", "{sound}");
        assert_eq!(sound["played"], true, "played through ALSA's null device: {sound}");
    } else if on_path("aplay") {
        assert_eq!(sound["backend"], "aplay", "{sound}");
        assert_eq!(sound["played"], true, "played through ALSA's null device: {sound}");
    } else if sound["played"] == false {
        assert_eq!(sound["backend"], "none", "{sound}");
        assert!(sound["error"].as_str().is_some_and(|e| !e.is_empty()), "says why: {sound}");
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[tokio::test]
async fn a_completed_task_sounds_its_start_and_success_and_notifies() {
    let f = feedback_env();
    let client = f.env.server().await;
    let created = client.create("build_api", "build @result=Built the API in src/api.rs", json!({})).await;
    assert!(created["task_id"].as_i64().is_some(), "{created}");
    client.wait_task("build_api", 20.0).await;

    let notification = line_for(&f.log, "notification", "task_completed").await;
    assert_eq!(notification["title"], "Completed: build_api");
    let body = notification["body"].as_str().expect("body");
    assert!(body.starts_with("in ") && body.contains(" s · $0.0008\n"), "duration and cost: {body}");
    assert!(body.ends_with("\nBuilt the API in src/api.rs"), "the result's first line: {body}");
    let success = line_for(&f.log, "sound", "task_completed").await;
    stop(client).await;

    let sounds = of_kind(&f.log, "sound");
    let events: Vec<&str> = sounds.iter().map(|s| s["event"].as_str().expect("event")).collect();
    assert_eq!(events, ["task_started", "task_completed"], "a task alone announces no orchestration");
    assert_eq!(sounds[0]["cue"], "start");
    assert_eq!(sounds[0]["sound"], "default");
    assert_eq!(success["cue"], "success");
    for sound in &sounds {
        check_played(sound);
    }
    assert_eq!(of_kind(&f.log, "notification").len(), 1, "no notification for a start");
}

#[tokio::test]
async fn a_failed_task_sounds_failure_and_notifies_but_a_retried_attempt_does_not() {
    let f = feedback_env();
    let client = f.env.server().await;
    client.create("flaky", "flaky @529-once=flaky", json!({ "max_attempts": 2 })).await;
    client.wait_task("flaky", 20.0).await;
    client.create("denied", "denied @auth", json!({ "max_attempts": 3 })).await;
    let status = client.wait_task("denied", 20.0).await;
    assert_eq!(status["status"], "failed", "{status}");

    let notification = line_for(&f.log, "notification", "task_failed").await;
    assert_eq!(notification["title"], "Failed: denied");
    let body = notification["body"].as_str().expect("body");
    assert!(body.starts_with("after ") && body.contains("\nauth: "), "{body}");
    let failure = line_for(&f.log, "sound", "task_failed").await;
    assert_eq!(failure["cue"], "failure");
    check_played(&failure);
    stop(client).await;

    let sounds = of_kind(&f.log, "sound");
    let events: Vec<&str> = sounds.iter().map(|s| s["event"].as_str().expect("event")).collect();
    // flaky: two attempts started, one success; denied: one start, one failure.
    assert_eq!(events.iter().filter(|e| **e == "task_started").count(), 3, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "task_completed").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "task_failed").count(), 1, "the retried attempt is silent: {events:?}");
    let titles: Vec<String> = of_kind(&f.log, "notification").iter().map(|n| n["title"].to_string()).collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
}

#[tokio::test]
async fn a_finished_orchestration_sounds_and_notifies_once() {
    let f = feedback_env();
    let client = f.env.server().await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "name": "pair", "tasks": [
                { "identifier": "first", "execution_prompt": "first" },
                { "identifier": "second", "execution_prompt": "second", "depends_on": ["first"] },
            ]}),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 20.0).await;

    let notification = line_for(&f.log, "notification", "orchestration_finished").await;
    assert_eq!(notification["title"], "Orchestration completed: pair");
    assert_eq!(notification["body"], "2 of 2 tasks completed · $0.0016");
    let sound = line_for(&f.log, "sound", "orchestration_finished").await;
    assert_eq!(sound["cue"], "orchestration");
    stop(client).await;

    let all = lines(&f.log);
    let count = |kind: &str, event: &str| all.iter().filter(|l| l["kind"] == kind && l["event"] == event).count();
    assert_eq!(count("sound", "orchestration_finished"), 1);
    assert_eq!(count("notification", "orchestration_finished"), 1);
    assert_eq!((count("sound", "task_started"), count("sound", "task_completed")), (2, 2));
    assert_eq!(count("notification", "task_completed"), 2);
    // The orchestration's sound comes after the last task's.
    let position = |event: &str| all.iter().rposition(|l| l["kind"] == "sound" && l["event"] == event);
    assert!(position("orchestration_finished") > position("task_completed"));
}

#[tokio::test]
async fn the_switches_turn_each_output_off() {
    for (sounds, notifications) in [("false", "true"), ("on", "0"), ("no", "off")] {
        let f = feedback_env();
        let env =
            f.env.set("CLAUDE_WORKER_ENABLE_SOUNDS", sounds).set("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", notifications);
        let client = env.server().await;
        client.create("quiet", "quiet", json!({})).await;
        client.wait_task("quiet", 20.0).await;
        let sounds_on = sounds == "on";
        let notifications_on = notifications == "true";
        // Wait for what is on; once the server has exited, nothing more can come.
        if sounds_on {
            line_for(&f.log, "sound", "task_completed").await;
        }
        if notifications_on {
            line_for(&f.log, "notification", "task_completed").await;
        }
        stop(client).await;
        assert_eq!(!of_kind(&f.log, "sound").is_empty(), sounds_on, "sounds={sounds}");
        assert_eq!(!of_kind(&f.log, "notification").is_empty(), notifications_on, "notifications={notifications}");
        if !sounds_on && !notifications_on {
            assert!(!f.log.exists(), "nothing at all is written");
        }
    }
}

#[tokio::test]
async fn a_headless_worker_announces_its_last_task_before_it_exits() {
    let f = feedback_env();
    let env = f.env.set("CLAUDE_WORKER_ENABLE_SOUNDS", "false").set("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "false");
    // A server queues a task that may start only in a moment, and goes away before it does.
    let client = env.server().await;
    client.create("later", "later @result=Done later", json!({ "wait_after_dependencies": 2.0 })).await;
    stop(client).await;
    assert!(!f.log.exists(), "the server announced nothing");

    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        env.command(crate::harness::SERVER)
            .args(["work", "--until-idle"])
            .env("CLAUDE_WORKER_ENABLE_SOUNDS", "true")
            .env("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "true")
            .output(),
    )
    .await
    .expect("work --until-idle exits when the queue is empty")
    .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty(), "nothing on stdout");
    // It exited: what it announced is all there is.
    let events: Vec<(String, String)> = lines(&f.log)
        .iter()
        .map(|l| (l["kind"].as_str().unwrap_or("").to_owned(), l["event"].as_str().unwrap_or("").to_owned()))
        .collect();
    let pair = |kind: &str, event: &str| (kind.to_owned(), event.to_owned());
    assert!(events.contains(&pair("sound", "task_completed")), "{events:?}");
    assert!(events.contains(&pair("notification", "task_completed")), "{events:?}");
    for sound in of_kind(&f.log, "sound") {
        check_played(&sound);
    }
}

#[tokio::test]
async fn configured_sound_files_play_and_a_broken_one_is_reported_once_at_start_up() {
    let f = feedback_env();
    // A real WAV of our own: a quarter second of a quiet 440 Hz tone, 16-bit mono at 8 kHz.
    let good = f.dir.join("mine.wav");
    let samples: Vec<i16> =
        (0..2000).map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 3000.0) as i16).collect();
    std::fs::write(&good, wav_16bit_mono(&samples, 8000)).expect("write wav");
    // Random bytes named like a WAV.
    let broken = f.dir.join("x.wav");
    let mut bytes = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4096 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.push((seed >> 24) as u8);
    }
    std::fs::write(&broken, bytes).expect("write junk");
    let env = f
        .env
        .set("CLAUDE_WORKER_START_SOUND", &good.display().to_string())
        .set("CLAUDE_WORKER_SUCCESS_SOUND", &broken.display().to_string());
    let client = env.server().await;
    for name in ["one", "two"] {
        client.create(name, name, json!({})).await;
        client.wait_task(name, 20.0).await;
    }
    eventually(20.0, "two success sounds", || (of_kind(&f.log, "sound").len() == 4).then_some(())).await;
    stop(client).await;

    for sound in of_kind(&f.log, "sound") {
        match sound["cue"].as_str() {
            Some("start") => assert_eq!(sound["sound"], good.display().to_string(), "{sound}"),
            Some("success") => assert_eq!(sound["sound"], "default", "the built-in sound instead: {sound}"),
            _ => panic!("unexpected sound {sound}"),
        }
        check_played(&sound);
    }
    let global = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    let reports: Vec<&str> = global.lines().filter(|l| l.contains("CLAUDE_WORKER_SUCCESS_SOUND")).collect();
    assert_eq!(reports.len(), 1, "reported once: {reports:?}");
    assert!(reports[0].contains("WARN") && reports[0].contains(&broken.display().to_string()), "{}", reports[0]);
    assert!(reports[0].contains("built-in success sound"), "{}", reports[0]);
    assert!(!global.contains("CLAUDE_WORKER_START_SOUND"), "the good file is not reported");
}

fn wav_16bit_mono(samples: &[i16], rate: u32) -> Vec<u8> {
    let data = u32::try_from(samples.len() * 2).expect("small");
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16_u32.to_le_bytes());
    out.extend_from_slice(&1_u16.to_le_bytes());
    out.extend_from_slice(&1_u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2_u16.to_le_bytes());
    out.extend_from_slice(&16_u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn without_audio_or_a_desktop_it_stays_quiet_and_says_why_once() {
    let f = feedback_env();
    // An ALSA that knows no device at all; no sound server and no D-Bus, as before.
    let no_devices = f.dir.join("empty-asound.conf");
    std::fs::write(&no_devices, "").expect("write");
    let env = f
        .env
        .set("ALSA_CONFIG_PATH", &no_devices.display().to_string())
        .set("CLAUDE_WORKER_ENABLE_SOUNDS", "false")
        .set("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "false");
    let client = env.server().await;
    for name in ["one", "two"] {
        client.create(name, name, json!({ "wait_after_dependencies": 1.0 })).await;
    }
    stop(client).await;

    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        env.command(crate::harness::SERVER)
            .args(["work", "--until-idle"])
            .env("CLAUDE_WORKER_ENABLE_SOUNDS", "true")
            .env("CLAUDE_WORKER_ENABLE_NOTIFICATIONS", "true")
            .env("CLAUDE_WORKER_LOG_LEVEL", "claude_worker=debug")
            .output(),
    )
    .await
    .expect("work --until-idle exits when the queue is empty")
    .expect("run");
    assert!(output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout");
    assert!(output.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&output.stderr));

    let sounds = of_kind(&f.log, "sound");
    assert_eq!(sounds.len(), 4, "two starts, two successes: {sounds:?}");
    for sound in &sounds {
        assert_eq!(sound["played"], false, "{sound}");
        assert!(sound["error"].as_str().is_some_and(|e| !e.is_empty()), "{sound}");
    }
    let notifications = of_kind(&f.log, "notification");
    assert_eq!(notifications.len(), 2, "{notifications:?}");
    assert!(notifications.iter().all(|n| n["shown"] == false), "{notifications:?}");
    let global = std::fs::read_to_string(env.home.join("claude-worker.log")).expect("global log");
    let said = |what: &str| global.lines().filter(|l| l.contains(what)).count();
    assert_eq!(said("cannot play sounds here"), 1, "one debug line for sounds");
    assert_eq!(said("cannot show desktop notifications here"), 1, "one debug line for notifications");
}

/// A stand-in for the desktop's notification service: records what it is asked to show.
#[cfg(target_os = "linux")]
struct Notifications {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

#[cfg(target_os = "linux")]
#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut seen = self.seen.lock().expect("lock");
        seen.push((app_name, summary, body));
        u32::try_from(seen.len()).expect("few")
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn notifications_reach_the_desktop_over_d_bus() {
    use tokio::io::AsyncBufReadExt as _;

    let f = feedback_env();
    // A private session bus (dbus-daemon is part of every Linux desktop; .ci/run installs it).
    let socket = f.dir.join("bus");
    let mut daemon = tokio::process::Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(std::process::Stdio::piped())
        // It complains when it cannot raise its file limit (in containers): shown if the test fails.
        .stderr(f.env.stderr_log())
        .kill_on_drop(true)
        .spawn()
        .expect("dbus-daemon runs (apt-get install dbus-daemon)");
    let mut address = String::new();
    tokio::io::BufReader::new(daemon.stdout.take().expect("stdout"))
        .read_line(&mut address)
        .await
        .expect("the bus address");
    let address = address.trim().to_owned();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _service = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .name("org.freedesktop.Notifications")
        .expect("name")
        .serve_at("/org/freedesktop/Notifications", Notifications { seen: seen.clone() })
        .expect("serve")
        .build()
        .await
        .expect("the notification service is on the bus");

    let env = f.env.set("DBUS_SESSION_BUS_ADDRESS", &address);
    let client = env.server().await;
    client.create("shown", "shown @result=All done", json!({})).await;
    client.wait_task("shown", 20.0).await;
    let line = line_for(&f.log, "notification", "task_completed").await;
    assert_eq!(line["shown"], true, "{line}");
    assert_eq!(line["backend"], "dbus");
    stop(client).await;

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (app, summary, body) = &seen[0];
    assert_eq!((app.as_str(), summary.as_str()), ("claude-worker", "Completed: shown"));
    assert!(body.ends_with("\nAll done") && body.contains("$0.0008"), "{body}");
}

#[tokio::test]
async fn an_orchestration_cancelled_while_nothing_of_it_runs_is_announced() {
    let f = feedback_env();
    let env = f.env.set("CLAUDE_WORKER_MAX_CONCURRENT", "1");
    let client = env.server().await;
    client.create("blocker", "blocker @sleep=60", json!({})).await;
    eventually(20.0, "the blocker to start", || env.starts().into_iter().next()).await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "name": "queued", "tasks": [
                { "identifier": "one", "execution_prompt": "one" },
                { "identifier": "two", "execution_prompt": "two", "depends_on": ["one"] },
            ]}),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.ok("cancel", json!({ "orchestration_id": id })).await;
    let notification = line_for(&f.log, "notification", "orchestration_finished").await;
    assert_eq!(notification["title"], "Orchestration cancelled: queued", "{notification}");
    line_for(&f.log, "sound", "orchestration_finished").await;
    client.ok("cancel", json!({ "task": "blocker" })).await;
    stop(client).await;
}
