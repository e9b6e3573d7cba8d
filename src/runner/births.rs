//! Which processes can have started since a moment, told from `/proc` without opening every
//! process's files: what makes the sweep at the end of each attempt cheap (see
//! [`super::stale::sweep`]), which otherwise reads the environment of every process on the machine.
//!
//! Linux gives process numbers in turn: a new process or thread gets the next free number after
//! the last one given, coming round to 300 after `pid_max`. So until the numbers have come all
//! the way round, every process started since a moment has a number after the last one given
//! then and up to the last one given now. Whether they can have come round is told by how many
//! processes and threads were started since (`processes` in `/proc/stat`, counted since boot)
//! and how many existed (`/proc/loadavg`): the numbers passed over are those given, and those
//! skipped because they were in use.

use std::fs;

/// What `/proc` says about the starting of processes at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Moment {
    /// Processes and threads started since boot, on the whole machine (`processes` in
    /// `/proc/stat`), read before `last_pid` for a [`Since`] and after it for an [`Until`]: so
    /// that the count between the two is never short of the numbers given in between, whichever
    /// way the reads interleave with new processes.
    started: u64,
    /// The last process number given, in our pid namespace.
    last_pid: u32,
    /// Processes and threads that exist.
    threads: u64,
    /// The highest process number plus one (`kernel.pid_max`).
    pid_max: u32,
}

/// The moment a window opens: taken before the processes looked for can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since(Moment);

/// The moment a window closes: taken after the processes looked at were listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Until(Moment);

/// The lowest number given once the numbers came round (`RESERVED_PIDS` in the kernel).
const FIRST_AFTER_WRAP: u32 = 300;

/// The process numbers that can belong to a process started since a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Any: the numbers may have come round, or `/proc` could not tell.
    All,
    /// After `after` and up to `upto`, going round past `pid_max` when `upto` is below `after`.
    Between { after: u32, upto: u32 },
}

impl Window {
    pub fn contains(self, pid: u32) -> bool {
        match self {
            Window::All => true,
            Window::Between { after, upto } if after <= upto => pid > after && pid <= upto,
            Window::Between { after, upto } => pid > after || pid <= upto,
        }
    }
}

/// The window of numbers given between `since` and `until` (read after the processes looked at
/// were listed). Each start moves the kernel's cursor past one number, and past every number in
/// use it meets on the way: at most three a process or thread that existed meanwhile (its own,
/// its process group's and its session's, which stay taken while their members live). While
/// that cannot add up to a whole round, no number was given twice and the window is exact.
pub fn window(since: &Since, until: &Until) -> Window {
    let (before, now) = (&since.0, &until.0);
    let Some(started) = now.started.checked_sub(before.started) else { return Window::All };
    let existed = before.threads.saturating_add(started);
    let travel = started.saturating_add(existed.saturating_mul(3));
    let round = u64::from(before.pid_max.min(now.pid_max).saturating_sub(FIRST_AFTER_WRAP));
    if travel >= round { Window::All } else { Window::Between { after: before.last_pid, upto: now.last_pid } }
}

/// The numbers of the window between `since` and `until`, in order, when they are at most
/// `limit`: `None` when any number may have been given, or more than `limit`. Past the highest
/// `pid_max` either read, the numbers come round to 300.
pub fn numbers(since: &Since, until: &Until, limit: usize) -> Option<Vec<u32>> {
    let Window::Between { after, upto } = window(since, until) else { return None };
    // Up to `upto`; or up to the end, then from 300 round to `upto`.
    let (first, second) = if after <= upto {
        (after + 1..upto + 1, 0..0)
    } else {
        (after.saturating_add(1)..since.0.pid_max.max(until.0.pid_max), FIRST_AFTER_WRAP..upto + 1)
    };
    (first.len() + second.len() <= limit).then(|| first.chain(second).collect())
}

impl Since {
    /// Reads the moment from `/proc`, the count of starts before the last number given; `None`
    /// when it cannot be read, or when `/proc` belongs to another pid namespace than this
    /// process (its numbers would not be ours).
    pub fn now() -> Option<Since> {
        if !same_namespace() {
            return None;
        }
        let stat = read("/proc/stat", 16 * 1024)?;
        let loadavg = read("/proc/loadavg", 128)?;
        Some(Since(parse(&stat, &loadavg, &read("/proc/sys/kernel/pid_max", 32)?)?))
    }
}

impl Until {
    /// Reads the moment from `/proc`, the count of starts after the last number given.
    pub fn now() -> Option<Until> {
        if !same_namespace() {
            return None;
        }
        let loadavg = read("/proc/loadavg", 128)?;
        let stat = read("/proc/stat", 16 * 1024)?;
        Some(Until(parse(&stat, &loadavg, &read("/proc/sys/kernel/pid_max", 32)?)?))
    }
}

/// A file of `/proc` read whole, in one read call where it is no longer than `size`, as text.
fn read(path: &str, size: usize) -> Option<String> {
    String::from_utf8(read_proc(path, size)?).ok()
}

/// A file of `/proc` read whole with plain reads into a buffer of `size` (grown if need be).
/// `fs::read` and `read_to_string` first ask the file's size and position (a `statx` and an
/// `lseek` each time), which `/proc` answers with 0: two wasted calls a file, and the sweeps
/// read several files at each attempt's end.
pub(super) fn read_proc(path: &str, size: usize) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut file = fs::File::open(path).ok()?;
    let mut bytes = vec![0; size.max(64)];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    bytes.truncate(len);
    Some(bytes)
}

/// A moment from the texts of `/proc/stat`, `/proc/loadavg` and `kernel.pid_max`.
fn parse(stat: &str, loadavg: &str, pid_max: &str) -> Option<Moment> {
    // "0.42 0.13 0.05 1/123 15046": running/existing, then the last number given.
    let mut fields = loadavg.split_whitespace().skip(3);
    let threads = fields.next()?.split_once('/')?.1.parse().ok()?;
    let last_pid = fields.next()?.parse().ok()?;
    Some(Moment { started: started_count(stat)?, last_pid, threads, pid_max: pid_max.trim().parse().ok()? })
}

/// The `processes` line of `/proc/stat`: processes and threads started since boot.
fn started_count(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("processes "))?.trim().parse().ok()
}

/// Whether `/proc` shows this process under the number it has (checked once).
fn same_namespace() -> bool {
    static SAME: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SAME.get_or_init(|| {
        fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str().and_then(|s| s.parse::<u32>().ok()))
            .is_some_and(|pid| pid == std::process::id())
    })
}

/// The processes the runner started and has not yet reaped. `/proc` lists a process's children
/// in a file per thread, and reading them at every attempt's end cost about twenty opens a task
/// with 100 attempts running: they are kept here instead, as the runner starts and reaps them.
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// A child of this process, counted among [`own_children`] until this is dropped (once it was
/// reaped, or is about to be).
#[derive(Debug)]
pub struct OwnChild(u32);

impl OwnChild {
    pub fn register(pid: u32) -> OwnChild {
        CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(pid);
        OwnChild(pid)
    }
}

impl Drop for OwnChild {
    fn drop(&mut self) {
        let mut children = CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = children.iter().position(|&pid| pid == self.0) {
            children.swap_remove(at);
        }
    }
}

/// The children of this process that the runner started and has not reaped. A child another
/// part started is not among them: its environment is read like any other process's. A child
/// is forgotten just after it is reaped; in between, its number is left out of a window wrongly
/// only if a process started in the window was given it, which needs the numbers to have come
/// round since the child started (otherwise its number lies before the window, or was given in
/// it once, to the child).
pub fn own_children() -> Vec<u32> {
    CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(started: u64, last_pid: u32, threads: u64) -> Moment {
        Moment { started, last_pid, threads, pid_max: 32768 }
    }

    fn window(since: &Moment, until: &Moment) -> Window {
        super::window(&Since(*since), &Until(*until))
    }

    #[test]
    fn a_short_while_gives_the_numbers_after_the_last_one_then() {
        let w = window(&moment(1000, 5000, 150), &moment(1040, 5060, 170));
        assert_eq!(w, Window::Between { after: 5000, upto: 5060 });
        assert!(!w.contains(5000), "the last number given before is not new");
        assert!(w.contains(5001) && w.contains(5060));
        assert!(!w.contains(5061) && !w.contains(301) && !w.contains(32767));
    }

    #[test]
    fn a_window_that_came_round_past_pid_max_wraps() {
        let w = window(&moment(1000, 32700, 150), &moment(1200, 400, 150));
        assert_eq!(w, Window::Between { after: 32700, upto: 400 });
        assert!(w.contains(32701) && w.contains(32767) && w.contains(300) && w.contains(400));
        assert!(!w.contains(401) && !w.contains(32700) && !w.contains(5000));
    }

    #[test]
    fn when_the_numbers_may_have_come_all_the_way_round_every_process_is_looked_at() {
        // 8,200 starts with 150 threads: up to 8,200 + 3 x 8,350 numbers passed, over one round.
        let w = window(&moment(1000, 5000, 150), &moment(9200, 5100, 150));
        assert_eq!(
            window(&moment(1000, 5000, 150), &moment(9000, 5100, 150)),
            Window::Between { after: 5000, upto: 5100 },
            "8,000: just under"
        );
        assert_eq!(w, Window::All);
        assert!(w.contains(1) && w.contains(5000));
        // Many threads existing make the round shorter too.
        assert_eq!(window(&moment(0, 5000, 11_000), &moment(1, 5001, 11_000)), Window::All);
        // A lower pid_max now counts.
        let lowered = Moment { pid_max: 400, ..moment(1001, 5001, 150) };
        assert_eq!(window(&moment(1000, 5000, 150), &lowered), Window::All);
        // A counter that went back (another boot's numbers?) tells nothing.
        assert_eq!(window(&moment(1000, 5000, 150), &moment(999, 5001, 150)), Window::All);
    }

    #[test]
    fn a_narrow_window_is_listed_number_by_number() {
        let numbers = |after, upto, limit| {
            super::numbers(&Since(moment(1000, after, 100)), &Until(moment(1010, upto, 100)), limit)
        };
        assert_eq!(numbers(5000, 5003, 10), Some(vec![5001, 5002, 5003]));
        assert_eq!(numbers(5000, 5000, 10), Some(vec![]), "nothing given");
        assert_eq!(numbers(5000, 5010, 10).map(|n| n.len()), Some(10));
        assert_eq!(numbers(5000, 5011, 10), None, "wider than the limit");
        // Round past pid_max (32768): up to 32767, then from 300.
        assert_eq!(numbers(32765, 301, 10), Some(vec![32766, 32767, 300, 301]));
        assert_eq!(numbers(32767, 300, 10), Some(vec![300]));
        assert_eq!(numbers(32700, 400, 10), None);
        // Every number of the window is one the window contains.
        for (after, upto) in [(5000, 5010), (32765, 303)] {
            let window = window(&moment(1000, after, 100), &moment(1010, upto, 100));
            assert!(numbers(after, upto, 100).expect("narrow").into_iter().all(|pid| window.contains(pid)));
        }
        // When the numbers may have come round, every number may be new: none is listed.
        let long = super::numbers(&Since(moment(1000, 5000, 100)), &Until(moment(90_000, 5001, 100)), usize::MAX);
        assert_eq!(long, None, "every number");
        // A pid_max raised meanwhile: the numbers up to the higher one may have been given.
        let raised = Until(Moment { pid_max: 32770, ..moment(1010, 300, 100) });
        assert_eq!(super::numbers(&Since(moment(1000, 32767, 100)), &raised, 10), Some(vec![32768, 32769, 300]));
    }

    #[test]
    fn moments_are_read_from_the_texts_of_proc() {
        let stat = "cpu  1 2 3\nintr 5\nctxt 9\nbtime 1\nprocesses 94521\nprocs_running 1\n";
        assert_eq!(
            parse(stat, "2.27 4.05 3.25 1/84 29602\n", "32768\n"),
            Some(Moment { started: 94521, last_pid: 29602, threads: 84, pid_max: 32768 })
        );
        assert_eq!(parse("cpu 1\n", "0 0 0 1/84 29602", "32768"), None, "no count of processes");
        assert_eq!(parse(stat, "0 0 0 84 29602", "32768"), None, "no threads");
        assert_eq!(parse(stat, "0 0 0 1/84", "32768"), None, "no last pid");
        assert_eq!(parse(stat, "0 0 0 1/84 29602", "many"), None, "no pid_max");
    }

    #[test]
    fn this_machine_tells_the_moment_and_a_child_started_after_it_is_in_the_window() {
        let before = Since::now().expect("a Linux /proc in our namespace");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn");
        let pid = child.id();
        let registered = OwnChild::register(pid);
        let now = Until::now().expect("again");
        assert!(super::window(&before, &now).contains(pid), "{before:?} {now:?} {pid}");
        assert!(own_children().contains(&pid));
        child.kill().expect("kill");
        let _ = child.wait();
        drop(registered);
        assert!(!own_children().contains(&pid), "reaped and forgotten");
        let since_then = Since::now().expect("again");
        let later = Until::now().expect("again");
        assert!(!super::window(&since_then, &later).contains(pid), "started before the window");
    }
}
