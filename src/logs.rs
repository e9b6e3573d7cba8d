//! The log files: the global `claude-worker.log` (set up by the binaries through `tracing`), and
//! per task `tasks/task_<id>_summary.log` (one readable line per step) and
//! `tasks/task_<id>_detailed.log` (every stream-json line and the CLI's stderr, capped: the head
//! is kept as written, the tail in two rotating segments, joined when the attempt ends).
//!
//! Task ids are only unique within one database, and several databases may share a log
//! directory, so each database has its own directory of task logs: [`task_log_dir_name`].
//!
//! Each task's files have one writer at a time (the owner of its current attempt), so lines from
//! two writers never interleave.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::model::TaskId;

/// Paths of one task's log files.
#[derive(Clone, Debug)]
pub struct TaskLogPaths {
    pub summary: PathBuf,
    pub detailed: PathBuf,
}

impl TaskLogPaths {
    pub fn new(task_log_dir: &Path, task_id: TaskId) -> TaskLogPaths {
        TaskLogPaths {
            summary: task_log_dir.join(format!("task_{task_id}_summary.log")),
            detailed: task_log_dir.join(format!("task_{task_id}_detailed.log")),
        }
    }
}

/// The name of the directory, in the log directory, that holds the task logs of one database.
///
/// The database that lives in the log directory under its default name (`<log_dir>/tasks.db`,
/// the default layout, and the Python tool's) keeps plain `tasks`. Any other database gets
/// `tasks-<file stem>-<hash>`: the stem so that a person can tell which database it belongs to,
/// and 8 hex digits of a stable hash (FNV-1a) of its path so that two databases with the same file
/// name stay apart. Two databases sharing a log directory therefore never write, read or prune
/// each other's task logs. Both paths must be canonical (absolute, symlinks resolved), so that
/// every process naming the same database the same or another way agrees.
pub fn task_log_dir_name(canonical_log_dir: &Path, canonical_db_path: &Path) -> String {
    if canonical_db_path == canonical_log_dir.join("tasks.db") {
        return "tasks".to_owned();
    }
    let stem: String = canonical_db_path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(40)
        .collect();
    let stem = if stem.is_empty() { "db".to_owned() } else { stem };
    format!("tasks-{stem}-{:08x}", fnv1a(canonical_db_path.as_os_str().as_encoded_bytes()) as u32)
}

/// 64-bit FNV-1a: tiny, and the same in every build and release (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Opens a log file for appending (see [`crate::files::open_append`]: private, never through a
/// link, only a regular file of this user's), making its directory the first time.
fn open_append(path: &Path) -> io::Result<File> {
    match crate::files::open_append(path) {
        // The directory is made the first time only.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::files::private_dir_all(dir)?;
            }
            crate::files::open_append(path)
        }
        other => other,
    }
}

/// The summary log of the task whose detailed log is `detailed` (see [`TaskLogPaths`]).
fn summary_beside(detailed: &Path) -> Option<PathBuf> {
    let name = detailed.file_name()?.to_str()?.strip_suffix("_detailed.log")?;
    Some(detailed.with_file_name(format!("{name}_summary.log")))
}

/// Appends one line, prefixed with the time, to a task's summary log.
///
/// A summary log that cannot be opened safely (a link or a file of someone else's planted there)
/// is not written, and the global log says so: the task itself runs on.
pub fn append_summary(path: &Path, line: &str) -> io::Result<()> {
    let mut file = open_append(path).inspect_err(|e| {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("not writing the task's summary log: {e}");
        }
    })?;
    let stamp = crate::time::rfc3339(crate::time::now_ms());
    // One write, not one per piece as `writeln!` on a file does: a reader following the log
    // (the dashboard, `tail -f`) never sees half a line.
    file.write_all(format!("{stamp} {line}\n").as_bytes())
}

/// The steps of one attempt, as they go to its summary log: a step that repeats the one before
/// is not written again, and once `budget` bytes are written the rest are left to the detailed
/// log (one line says so). However much a task prints, its summary stays readable and small.
pub struct SummarySteps {
    path: PathBuf,
    last: Option<String>,
    left: u64,
    stopped: bool,
}

impl SummarySteps {
    pub fn new(path: &Path, budget: u64) -> SummarySteps {
        SummarySteps { path: path.to_owned(), last: None, left: budget, stopped: false }
    }

    /// Records that the task began `action`.
    pub fn step(&mut self, action: &str) -> io::Result<()> {
        if self.stopped || self.last.as_deref() == Some(action) {
            return Ok(());
        }
        self.last = Some(action.to_owned());
        // The time stamp and the newline: about 26 bytes.
        let len = action.len() as u64 + 26;
        let written = if len > self.left {
            self.stopped = true;
            append_summary(&self.path, "[... more steps than the summary keeps: see the detailed log ...]")
        } else {
            self.left -= len;
            append_summary(&self.path, action)
        };
        // A summary that cannot be written (see `append_summary`) is said once, not at every step.
        if written.is_err() {
            self.stopped = true;
        }
        written
    }
}

/// The last `n` lines of a file (empty when it does not exist), reading at most the last few MiB.
pub fn tail_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const WINDOW: u64 = 4 * 1024 * 1024;
    let mut file = match crate::files::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()).collect())
}

/// A piece of a log: at most `max` bytes from byte `from`, ending on a whole UTF-8 character,
/// and the file's size (nothing and 0 when it does not exist; nothing when `from` is at or past
/// the end). Whoever follows a log asks again from `from` plus the piece's length.
pub fn read_piece(path: &Path, from: u64, max: usize) -> io::Result<(Vec<u8>, u64)> {
    let mut file = match crate::files::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    if from >= size {
        return Ok((Vec::new(), size));
    }
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity(max.min(usize::try_from(size - from).unwrap_or(max)));
    file.take(max as u64).read_to_end(&mut bytes)?;
    // A character cut by the end of the piece waits for the next one.
    if let Err(e) = std::str::from_utf8(&bytes)
        && e.error_len().is_none()
        && e.valid_up_to() > 0
    {
        bytes.truncate(e.valid_up_to());
    }
    Ok((bytes, size))
}

/// The detailed log of one attempt, capped at about `cap` bytes for the whole file.
pub struct DetailedLog {
    head: File,
    path: PathBuf,
    head_left: u64,
    segment_limit: u64,
    /// Tail segments, used once the head is full: `[older, current]`.
    segments: Option<[(PathBuf, File, u64); 2]>,
    /// Bytes dropped between the head and the kept tail.
    omitted: u64,
}

impl DetailedLog {
    /// Opens the log for appending; what earlier attempts wrote counts against the cap.
    ///
    /// A log that cannot be opened safely (a link, or a file of someone else's, planted at its
    /// path) is not written: the task's summary says so, for whoever reads it.
    pub fn open(path: &Path, cap: u64) -> io::Result<DetailedLog> {
        let head = open_append(path).inspect_err(|e| {
            if let Some(summary) = summary_beside(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                let _ = append_summary(&summary, &format!("the detailed log is not written: {e}"));
            }
        })?;
        let existing = head.metadata()?.len();
        Ok(DetailedLog {
            head,
            path: path.to_owned(),
            head_left: (cap / 2).saturating_sub(existing),
            segment_limit: (cap / 4).max(1),
            segments: None,
            omitted: 0,
        })
    }

    /// Writes one line (a newline is added). A line longer than a tail segment is shortened,
    /// so that the cap holds whatever the size of one line.
    pub fn line(&mut self, prefix: &str, bytes: &[u8]) -> io::Result<()> {
        let room = usize::try_from(self.segment_limit).unwrap_or(usize::MAX).saturating_sub(prefix.len() + 1);
        if bytes.len() <= room {
            return self.whole_line(prefix, bytes);
        }
        let note = format!(" [... {} more bytes of this line not kept: CLAUDE_WORKER_MAX_LOG_MB ...]", bytes.len());
        let keep = room.saturating_sub(note.len());
        let note =
            format!(" [... {} more bytes of this line not kept: CLAUDE_WORKER_MAX_LOG_MB ...]", bytes.len() - keep);
        let mut shortened = Vec::with_capacity(keep + note.len());
        shortened.extend_from_slice(&bytes[..keep]);
        shortened.extend_from_slice(note.as_bytes());
        self.whole_line(prefix, &shortened)
    }

    fn whole_line(&mut self, prefix: &str, bytes: &[u8]) -> io::Result<()> {
        let len = (prefix.len() + bytes.len() + 1) as u64;
        if self.segments.is_none() && len <= self.head_left {
            self.head_left -= len;
            return write_line(&mut self.head, prefix, bytes);
        }
        if self.segments.is_none() {
            self.head_left = 0;
            let open_segment = |n: u8| -> io::Result<(PathBuf, File, u64)> {
                let p = self.path.with_extension(format!("log.tail{n}"));
                // A leftover of an attempt that died is replaced; a link is removed, never followed.
                let f = crate::files::create_replacing(&p)?;
                Ok((p, f, 0))
            };
            self.segments = Some([open_segment(0)?, open_segment(1)?]);
        }
        let Some(segments) = self.segments.as_mut() else { return Ok(()) };
        if segments[1].2 + len > self.segment_limit && segments[1].2 > 0 {
            // Rotate: the older segment is dropped, the current one becomes the older.
            segments.swap(0, 1);
            self.omitted += segments[1].2;
            segments[1].1.set_len(0)?;
            segments[1].1.seek(SeekFrom::Start(0))?;
            segments[1].2 = 0;
        }
        segments[1].2 += len;
        write_line(&mut segments[1].1, prefix, bytes)
    }

    /// Joins the kept tail to the head and removes the segments.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(segments) = self.segments.take() {
            writeln!(self.head, "[... {} bytes omitted: CLAUDE_WORKER_MAX_LOG_MB reached ...]", self.omitted)?;
            for (path, mut file, _) in segments {
                file.seek(SeekFrom::Start(0))?;
                io::copy(&mut file, &mut self.head)?;
                drop(file);
                std::fs::remove_file(&path)?;
            }
        }
        self.head.flush()
    }
}

fn write_line(file: &mut File, prefix: &str, bytes: &[u8]) -> io::Result<()> {
    // One write per line, so that a reader tailing the file never sees half a prefix.
    let mut buffer = Vec::with_capacity(prefix.len() + bytes.len() + 1);
    buffer.extend_from_slice(prefix.as_bytes());
    buffer.extend_from_slice(bytes);
    buffer.push(b'\n');
    file.write_all(&buffer)
}

/// Lines of the global log that may wait for the writer thread (see [`init_tracing`]). A batch of
/// 100,000 tasks logs 100,000 `created` lines at once: the thread that writes them waits for the
/// file in turns of this many.
const GLOBAL_LOG_QUEUE: usize = 8192;

/// Sets up diagnostics: warnings and errors to stderr, and the global log file (task events and
/// the server's own messages) under the log directory. Never stdout: in server mode it carries
/// JSON-RPC. The level comes from `CLAUDE_WORKER_LOG_LEVEL`, else `RUST_LOG`, else `info`.
/// Keep the returned guard alive: it flushes the file on drop.
pub fn init_tracing(config: &crate::config::Config) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, fmt};

    let level = std::env::var("CLAUDE_WORKER_LOG_LEVEL")
        .ok()
        .filter(|l| !l.is_empty())
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|l| !l.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    // The audio decoder comments on every file it probes; a broken sound file is reported once,
    // by claude-worker, instead.
    let quiet = |filter: EnvFilter| match "symphonia=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let filter = || quiet(EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info")));
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(quiet(EnvFilter::new("warn,claude_worker::exit=off")));
    // Opened here rather than by tracing-appender's file appender, which would follow a link.
    let file = crate::files::private_dir_all(&config.log_dir).and_then(|()| open_append(&config.global_log_path()));
    match file {
        Ok(file) => {
            // A line waits for the writer thread in a queue of GLOBAL_LOG_QUEUE lines; when the
            // queue is full, the thread that logs waits too, rather than the line being dropped.
            // tracing-appender's default queue (128,000 lines, built whole at start) was 4 MiB of
            // an idle server's memory.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(GLOBAL_LOG_QUEUE)
                .lossy(false)
                .finish(file);
            let file_layer = fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter());
            let _ = tracing_subscriber::registry().with(stderr_layer).with(file_layer).try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr_layer).try_init();
            tracing::warn!("cannot open the global log {}: {e}", config.global_log_path().display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_log_keeps_head_and_tail_within_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tasks/task_1_detailed.log");
        let cap = 4000;
        let mut log = DetailedLog::open(&path, cap).expect("open");
        for i in 0..1000 {
            log.line("", format!("line {i:05} .........").as_bytes()).expect("write");
        }
        log.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.len() as u64 <= cap + 200, "{} bytes", text.len());
        assert!(text.starts_with("line 00000"), "head kept");
        assert!(text.trim_end().ends_with("line 00999 ........."), "tail kept");
        assert!(text.contains("bytes omitted"));
        assert!(!path.with_extension("log.tail0").exists());
    }

    #[test]
    fn one_enormous_line_does_not_break_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("task_1_detailed.log");
        let cap = 4000;
        let mut log = DetailedLog::open(&path, cap).expect("open");
        log.line("", b"first").expect("write");
        log.line("", &vec![b'x'; 1_000_000]).expect("write");
        log.line("[stderr] ", &vec![b'y'; 1_000_000]).expect("write");
        log.line("", b"last").expect("write");
        log.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.len() as u64 <= cap + 200, "{} bytes", text.len());
        assert!(text.starts_with("first\n") && text.trim_end().ends_with("last"), "{text}");
        assert!(text.contains("more bytes of this line not kept"), "{text}");
    }

    #[test]
    fn the_default_database_keeps_plain_tasks_and_any_other_gets_its_own_directory() {
        let log_dir = Path::new("/home/u/.claude-worker");
        assert_eq!(task_log_dir_name(log_dir, &log_dir.join("tasks.db")), "tasks");
        let other = task_log_dir_name(log_dir, Path::new("/srv/project/work.db"));
        assert!(other.starts_with("tasks-work-") && other.len() == "tasks-work-".len() + 8, "{other}");
        assert_eq!(other, task_log_dir_name(log_dir, Path::new("/srv/project/work.db")), "stable");
        // The same file name elsewhere, or another name in the log directory, is another database.
        let same_name = task_log_dir_name(log_dir, Path::new("/srv/other/work.db"));
        assert!(same_name.starts_with("tasks-work-") && same_name != other, "{same_name}");
        let beside = task_log_dir_name(log_dir, &log_dir.join("second.db"));
        assert!(beside.starts_with("tasks-second-"), "{beside}");
        // The default name in another directory is not the default layout of this log directory.
        let elsewhere = task_log_dir_name(log_dir, Path::new("/home/u/other/tasks.db"));
        assert!(elsewhere.starts_with("tasks-tasks-"), "{elsewhere}");
        // A file name that would not make a tidy directory name is tidied.
        let odd = task_log_dir_name(log_dir, Path::new("/x/my db\n.sqlite"));
        assert!(odd.starts_with("tasks-my_db_-"), "{odd}");
        assert!(task_log_dir_name(log_dir, Path::new("/")).starts_with("tasks-db-"));
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Published test vectors: the directory names must not change between releases.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_detailed_log_planted_as_a_link_is_refused_and_the_summary_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").expect("write");
        let paths = TaskLogPaths::new(dir.path(), 7);
        std::os::unix::fs::symlink(&target, &paths.detailed).expect("symlink");
        assert!(DetailedLog::open(&paths.detailed, 4000).is_err());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
        let summary = std::fs::read_to_string(&paths.summary).expect("summary");
        assert!(summary.contains("the detailed log is not written") && summary.contains("symbolic link"), "{summary}");
    }

    #[test]
    fn a_piece_ends_on_a_whole_character_and_says_the_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "ab\u{e9}cd").expect("write");
        assert_eq!(read_piece(&path, 0, 3).expect("read"), (b"ab".to_vec(), 6));
        assert_eq!(read_piece(&path, 2, 10).expect("read"), ("\u{e9}cd".as_bytes().to_vec(), 6));
        assert_eq!(read_piece(&path, 6, 10).expect("read"), (Vec::new(), 6));
        assert_eq!(read_piece(&dir.path().join("none"), 0, 10).expect("read"), (Vec::new(), 0));
    }

    #[test]
    fn tail_lines_reads_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.log");
        std::fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(tail_lines(&path, 2).expect("tail"), vec!["b", "c"]);
        assert!(tail_lines(&dir.path().join("missing"), 2).expect("missing is empty").is_empty());
    }
}
