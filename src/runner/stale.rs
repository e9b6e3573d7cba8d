//! Stopping what is left of an attempt whose owner died. Every CLI the runner starts carries
//! `CLAUDE_WORKER_RUN=<owner>/<task>/<fence>` in its environment, inherited by everything it
//! starts. Before an attempt is run again, the processes carrying its tag are found through
//! `/proc/<pid>/environ` — which proves that a pid still belongs to that run, whatever the pid
//! recorded in the database has become since — and their process groups are stopped.
//!
//! Only Linux has `/proc`: elsewhere no process can be found this way, and a recovered attempt
//! may run while the old one finishes (its completion is still refused by the fence).

use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid};
use tokio::time::Instant;

use super::births::{self, Since, Until, Window};
use crate::model::TaskId;

/// The environment variable that tags a run's processes.
pub const RUN_TAG_VAR: &str = "CLAUDE_WORKER_RUN";

/// The tag of one attempt: unique across owners, tasks and claims.
pub fn run_tag(owner: &str, task_id: TaskId, fence: i64) -> String {
    format!("{owner}/{task_id}/{fence}")
}

/// A tag read back from an environment: the attempt of task `task_id` claimed by `owner` with
/// `fence`. Whoever reads one cannot tell it from a forgery or a leftover of an older attempt:
/// it is only a claim, to be checked against the database before it is believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunTag {
    pub owner: String,
    pub task_id: TaskId,
    pub fence: i64,
}

/// The longest tag [`parse_run_tag`] accepts (an owner is `host:pid:start-ms`).
const MAX_TAG_BYTES: usize = 1024;

/// Reads a tag made by [`run_tag`]; `None` for anything else. The owner is everything before
/// the last two `/`; the task id and the fence are positive decimal numbers, nothing more.
pub fn parse_run_tag(text: &str) -> Option<RunTag> {
    if text.len() > MAX_TAG_BYTES || text.chars().any(char::is_control) {
        return None;
    }
    let mut parts = text.rsplitn(3, '/');
    let (fence, task_id, owner) = (parts.next()?, parts.next()?, parts.next()?);
    let number = |digits: &str| -> Option<i64> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|n| *n > 0)
    };
    if owner.trim().is_empty() {
        return None;
    }
    Some(RunTag { owner: owner.to_owned(), task_id: number(task_id)?, fence: number(fence)? })
}

/// The live processes (not zombies) whose environment carries `tag`.
pub fn processes_of(tag: &str) -> Vec<Pid> {
    carrying(listed_pids(), tag)
}

/// Stops every process of the run tagged `tag` (SIGTERM to their groups, then SIGKILL after
/// `grace`), waits until none is left, and removes its prompt files. Returns how many processes were found; an error when
/// some survived even SIGKILL (unkillable, in uninterruptible sleep).
pub async fn stop_run(tag: &str, grace: Duration) -> Result<usize, String> {
    stop_tagged(tag, grace, "of an attempt whose owner is gone").await
}

/// Stops what an attempt that just ended left outside its process group: processes the CLI
/// started in a session of their own (`setsid`), which killing the group does not reach. Called
/// at the end of every attempt, however it ended. `since`, read before the attempt's process was
/// started, narrows the scan to the processes started since (see [`super::births`]). A window of
/// up to [`INLINE_LIMIT`] numbers is looked at here: a few opens, most failing at once, cost less
/// than a handoff to a blocking thread and back, which the next task's start waits for. A wider
/// one, or a scan of every process, runs off the async threads. Returns how many were found.
pub async fn sweep(tag: &str, grace: Duration, since: Option<Since>) -> Result<usize, String> {
    let until = since.and_then(|_| Until::now());
    let found = if let (Some(since), Some(until)) = (&since, &until)
        && let Some(numbers) = births::numbers(since, until, INLINE_LIMIT)
    {
        not_ours_carrying(numbers, since, tag)
    } else {
        let scan_tag = tag.to_owned();
        tokio::task::spawn_blocking(move || match since {
            Some(since) => processes_since(&scan_tag, &since, until.as_ref(), PROBE_LIMIT),
            None => processes_of(&scan_tag),
        })
        .await
        .unwrap_or_default()
    };
    if found.is_empty() {
        return Ok(0);
    }
    stop_tagged(tag, grace, "that the CLI left outside its process group").await
}

/// The live processes carrying `tag` among those started since `since`, in the window that
/// `until` closed (every process when it could not be read). A window of up to `probe_limit`
/// numbers is looked at number by number (a number no process holds any more fails at once); a
/// wider one by listing `/proc`, which costs a directory entry for every process on the machine.
fn processes_since(tag: &str, since: &Since, until: Option<&Until>, probe_limit: usize) -> Vec<Pid> {
    let candidates = match until {
        Some(until) => births::numbers(since, until, probe_limit).unwrap_or_else(|| {
            let started_since = births::window(since, until);
            listed_pids().into_iter().filter(|&pid| started_since.contains(pid)).collect()
        }),
        None => listed_pids(),
    };
    not_ours_carrying(candidates, since, tag)
}

/// Those of `candidates` (numbers found for a window opened at `since`) that carry `tag`: only
/// their environments are read, and not those of this process's own children (the other
/// attempts' CLIs, each with its own tag). The children are taken after the candidates were
/// found, and the window read again after that: a number given to a child after they were found
/// would then have been given twice in the window, which [`births::window`] rules out.
fn not_ours_carrying(mut candidates: Vec<u32>, since: &Since, tag: &str) -> Vec<Pid> {
    let children = births::own_children();
    if candidates.iter().any(|pid| children.contains(pid))
        && Until::now().is_some_and(|again| births::window(since, &again) != Window::All)
    {
        candidates.retain(|pid| !children.contains(pid));
    }
    carrying(candidates, tag)
}

/// The widest window looked at on the async thread that ran the attempt.
const INLINE_LIMIT: usize = 32;

/// The widest window looked at number by number: at 100 attempts at once, an attempt of a
/// fraction of a second sees a few hundred numbers given.
const PROBE_LIMIT: usize = 1024;

/// The numbers of the processes `/proc` lists (none without `/proc`).
fn listed_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(Result::ok).filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect()
}

/// Those of `pids` whose environment holds `CLAUDE_WORKER_RUN=<tag>` as one of its variables
/// (a zombie's is empty).
fn carrying(pids: Vec<u32>, tag: &str) -> Vec<Pid> {
    let needle = format!("{RUN_TAG_VAR}={tag}");
    pids.into_iter()
        .filter(|pid| {
            births::read_proc(&format!("/proc/{pid}/environ"), 4096)
                .is_some_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw)
        .collect()
}

async fn stop_tagged(tag: &str, grace: Duration, whose: &str) -> Result<usize, String> {
    let found = processes_of(tag);
    if found.is_empty() {
        super::prompt_files::remove_leftovers(tag);
        return Ok(0);
    }
    tracing::warn!(tag, "stopping {} leftover processes {whose}", found.len());
    signal_all(&found, Signal::SIGTERM);
    let kill_at = Instant::now() + grace;
    let give_up = kill_at + grace + Duration::from_secs(5);
    let mut killed = false;
    loop {
        let left = processes_of(tag);
        if left.is_empty() {
            // Its system prompts, which its server had no time to remove.
            super::prompt_files::remove_leftovers(tag);
            return Ok(found.len());
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(format!("{} processes of the old attempt survived SIGKILL", left.len()));
        }
        if now >= kill_at && !killed {
            signal_all(&left, Signal::SIGKILL);
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills what is left in process group `group` once its leader, the CLI, has exited and been
/// reaped. Its pid is free by then, and the group's number with it once the group is empty: a
/// new process may have it already (with `pid_max` at 32768 the numbers come round in minutes
/// under load), perhaps another task's CLI leading a group of its own, or any program of the
/// user's. While members of the old group remain, the kernel gives the number to no new
/// process; so the group is still ours exactly when it exists and no process has its number as
/// its pid (the old leader is gone). Without `/proc` to tell, the group is killed as before.
pub fn kill_leftovers(group: Pid) {
    if killpg(group, None).is_err() {
        // Empty, the usual case: nothing was left.
        return;
    }
    let proc_mounted = std::path::Path::new("/proc/self").exists();
    if proc_mounted && std::path::Path::new(&format!("/proc/{group}")).exists() {
        tracing::debug!(%group, "the process group's number was reused by another process: left alone");
        return;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

fn signal_all(pids: &[Pid], signal: Signal) {
    for &pid in pids {
        // The group first (the CLI leads its own), then the process, should it have left it.
        if let Ok(group) = getpgid(Some(pid))
            && group == pid
        {
            let _ = killpg(group, signal);
        }
        let _ = kill(pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[tokio::test]
    async fn finds_and_stops_a_tagged_process_group() {
        let tag = run_tag("test-host:1:1", 7, i64::from(std::process::id()));
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000; wait"])
            .env(RUN_TAG_VAR, &tag)
            .process_group(0)
            .spawn()
            .expect("spawn");
        // The shell and both sleeps carry the tag once started.
        let deadline = Instant::now() + Duration::from_secs(10);
        while processes_of(&tag).len() < 3 {
            assert!(Instant::now() < deadline, "tagged processes appear");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let found = stop_run(&tag, Duration::from_millis(500)).await.expect("stopped");
        assert_eq!(found, 3);
        let _ = child.wait();
        assert!(processes_of(&tag).is_empty());
        assert_eq!(stop_run(&tag, Duration::from_millis(500)).await, Ok(0));
    }

    #[test]
    fn the_processes_started_since_are_searched_past_our_own_children() {
        let before = Since::now().expect("a Linux /proc in our namespace");
        let tag = run_tag("test-host:2:2", 9, i64::from(std::process::id()));
        // Our own children, each with another tag: those the runner registered are left out
        // without a read, the last one (started by some other part) is read and passed over.
        let mut ours: Vec<std::process::Child> = (0..21)
            .map(|i| {
                std::process::Command::new("sleep")
                    .arg("1000")
                    .env(RUN_TAG_VAR, run_tag("test-host:2:2", 100 + i as i64, 1))
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let mut registered: Vec<births::OwnChild> =
            ours.iter().take(20).map(|child| births::OwnChild::register(child.id())).collect();
        // A registered child is left out unread, even one that carries the tag (the attempt's
        // own CLI, which its group takes care of): what shows that nothing of it was read.
        let mut twin = std::process::Command::new("sleep").arg("1000").env(RUN_TAG_VAR, &tag).spawn().expect("spawn");
        registered.push(births::OwnChild::register(twin.id()));
        // What an attempt left behind: a grandchild in a session of its own, its parent gone.
        let out = std::process::Command::new("sh")
            .args(["-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"])
            .env(RUN_TAG_VAR, &tag)
            .output()
            .expect("sh");
        let left: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("pid of the escapee");
        // `sh` says the number as it starts the escapee, which then runs `setsid`, which runs
        // `sleep`: while it is between those, its environment reads empty. Each search below
        // reads it once, so they wait until it is `sleep` with its environment in place.
        let settled = || {
            std::fs::read_to_string(format!("/proc/{left}/comm")).is_ok_and(|comm| comm.trim() == "sleep")
                && carrying(vec![left.unsigned_abs()], &tag) == vec![Pid::from_raw(left)]
        };
        let waited = std::time::Instant::now();
        while !settled() {
            assert!(waited.elapsed() < Duration::from_secs(10), "the escapee {left} never became `sleep`");
            std::thread::sleep(Duration::from_millis(5));
        }
        let until = Until::now().expect("a Linux /proc in our namespace");
        let found = processes_since(&tag, &before, Some(&until), PROBE_LIMIT);
        // The same window found by listing /proc; and too wide to be looked at inline under a
        // limit below its size.
        let listed = processes_since(&tag, &before, Some(&until), 0);
        let unlisted = births::numbers(&before, &until, 0);
        let all = processes_of(&tag);
        let later = processes_since(&tag, &Since::now().expect("now"), Until::now().as_ref(), PROBE_LIMIT);
        let _ = kill(Pid::from_raw(left), Signal::SIGKILL);
        for child in ours.iter_mut().chain([&mut twin]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(registered);
        assert_eq!(found, vec![Pid::from_raw(left)], "the escapee, and nothing else");
        assert_eq!(listed, found, "listing /proc finds the same");
        assert_eq!(unlisted, None, "a window wider than the limit, not to be looked at number by number");
        let twin = Pid::from_raw(i32::try_from(twin.id()).expect("pid"));
        let mut expected = vec![Pid::from_raw(left), twin];
        expected.sort();
        let mut all = all;
        all.sort();
        assert_eq!(all, expected, "reading every process finds the same, and the registered twin");
        assert!(later.is_empty(), "a moment taken after it started does not see it: {later:?}");
    }

    /// Whether `pid` is gone or a zombie.
    fn dead(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
    }

    #[tokio::test]
    async fn leftovers_are_killed_but_a_group_number_taken_by_another_process_is_not() {
        // The leader exits at once and is reaped; its background child is left in the group.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 >/dev/null & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let group = Pid::from_raw(i32::try_from(leader.id()).expect("pid"));
        let mut out = String::new();
        std::io::Read::read_to_string(leader.stdout.as_mut().expect("stdout"), &mut out).expect("read");
        let _ = leader.wait();
        let left: i32 = out.trim().parse().expect("pid of the child");
        assert!(!dead(left), "the child outlived its leader");
        kill_leftovers(group);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dead(left) {
            assert!(Instant::now() < deadline, "the leftover is killed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A live process whose pid is the group's number: the number was given anew, and the
        // group is not ours any more.
        let mut other = std::process::Command::new("sleep").arg("1000").process_group(0).spawn().expect("spawn");
        let number = Pid::from_raw(i32::try_from(other.id()).expect("pid"));
        kill_leftovers(number);
        assert_eq!(other.try_wait().expect("try_wait"), None, "another process's group is left alone");
        other.kill().expect("kill");
        let _ = other.wait();
    }

    #[test]
    fn run_tags_read_back_and_anything_else_is_refused() {
        let tag = run_tag("host/with:odd/chars:12:1700000000000", 42, 7);
        assert_eq!(
            parse_run_tag(&tag),
            Some(RunTag { owner: "host/with:odd/chars:12:1700000000000".to_owned(), task_id: 42, fence: 7 })
        );
        for bad in [
            "",
            "garbage",
            "owner/42",
            "/42/7",
            " /42/7",
            "owner/0/7",
            "owner/42/0",
            "owner/-1/7",
            "owner/+1/7",
            "owner/ 42/7",
            "owner/42/7 ",
            "owner/4x2/7",
            "owner/99999999999999999999/7",
            "own\u{7}ner/42/7",
            "owner\n/42/7",
        ] {
            assert_eq!(parse_run_tag(bad), None, "{bad:?}");
        }
        assert_eq!(parse_run_tag(&format!("{}/1/1", "h".repeat(2000))), None, "too long");
    }
}
