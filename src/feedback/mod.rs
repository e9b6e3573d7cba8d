//! Feedback for a person who is not watching a terminal: a sound when a task starts, completes or
//! fails and a distinct one when an orchestration finishes ([`sound`]), and a desktop
//! notification when a task completes or fails and when an orchestration finishes ([`desktop`]).
//!
//! The executor emits an [`Event`] through its [`Feedback`] handle for the changes it made
//! itself (it started the CLI, its outcome was the one accepted), so several processes on one
//! database do not all beep for the same task. Emitting never blocks and never fails: each output
//! has its own thread fed by a small bounded queue, and an event that finds the queue full is
//! dropped. Nothing here writes to stdout; a machine without audio or a desktop session logs one
//! debug line and stays quiet.
//!
//! `CLAUDE_WORKER_FEEDBACK_LOG` (a diagnostics knob, used by the tests) names a file that gets
//! one JSON line per sound played and per notification shown, with what was played or shown and
//! through which backend, in addition to really playing or showing it.

pub mod desktop;
pub mod sound;
pub mod synth;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::model::{OrchestrationStatus, TaskError, TaskId, TaskRecord, TaskStatus};
use crate::store::{Finish, FinishOutcome, OrchestrationEnd};
use crate::usage_limit::{self, Pause};

pub use sound::Cue;

/// How many events may wait for an output before new ones are dropped.
const QUEUE: usize = 16;

/// Something a person may want to hear or see.
#[derive(Clone, Debug)]
pub enum Event {
    /// The task's CLI process started.
    TaskStarted {
        task_id: TaskId,
        identifier: String,
    },
    TaskCompleted {
        task_id: TaskId,
        identifier: String,
        elapsed: Duration,
        cost_usd: f64,
        result: Option<String>,
    },
    /// The task failed for good (not an attempt that will be retried).
    TaskFailed {
        task_id: TaskId,
        identifier: String,
        elapsed: Duration,
        cost_usd: f64,
        error: TaskError,
    },
    /// The last unfinished task of an orchestration of several tasks ended.
    OrchestrationFinished(OrchestrationEnd),
    /// The account's usage limit paused every claim (announced by the one process whose write
    /// started the pause).
    WorkPaused(Pause),
    /// A usage-limit pause ended: work starts again (announced by the one process that ended it).
    WorkResumed(Pause),
}

impl Event {
    /// The event's name in the feedback log.
    pub fn name(&self) -> &'static str {
        match self {
            Event::TaskStarted { .. } => "task_started",
            Event::TaskCompleted { .. } => "task_completed",
            Event::TaskFailed { .. } => "task_failed",
            Event::OrchestrationFinished(_) => "orchestration_finished",
            Event::WorkPaused(_) => "work_paused",
            Event::WorkResumed(_) => "work_resumed",
        }
    }

    /// The sound it plays.
    pub fn cue(&self) -> Cue {
        match self {
            Event::TaskStarted { .. } => Cue::Start,
            Event::TaskCompleted { .. } => Cue::Success,
            Event::TaskFailed { .. } => Cue::Failure,
            Event::OrchestrationFinished(_) => Cue::Orchestration,
            // No sounds of their own (and no more variables): a pause is heard as a failure, the
            // resume as a start.
            Event::WorkPaused(_) => Cue::Failure,
            Event::WorkResumed(_) => Cue::Start,
        }
    }

    /// The desktop notification it shows, as title and body; none for a start.
    pub fn notification(&self) -> Option<(String, String)> {
        match self {
            Event::TaskStarted { .. } => None,
            Event::TaskCompleted { identifier, elapsed, cost_usd, result, .. } => {
                let mut body = format!("in {} · ${cost_usd:.4}", human_duration(*elapsed));
                if let Some(line) = result.as_deref().and_then(first_line) {
                    body.push('\n');
                    body.push_str(&line);
                }
                Some((format!("Completed: {identifier}"), body))
            }
            Event::TaskFailed { identifier, elapsed, cost_usd, error, .. } => {
                let mut body = format!("after {} · ${cost_usd:.4}\n{}", human_duration(*elapsed), error.kind);
                if let Some(line) = first_line(&error.message) {
                    body.push_str(": ");
                    body.push_str(&line);
                }
                Some((format!("Failed: {identifier}"), body))
            }
            Event::OrchestrationFinished(end) => {
                let who = end.name.clone().unwrap_or_else(|| format!("#{}", end.orchestration_id));
                let c = &end.counters;
                let tally = if c.completed == c.total {
                    format!("{} of {} tasks completed", c.completed, c.total)
                } else {
                    let parts: Vec<String> = [
                        (c.completed, "completed"),
                        (c.failed, "failed"),
                        (c.cancelled, "cancelled"),
                        (c.skipped, "skipped"),
                    ]
                    .into_iter()
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, what)| format!("{n} {what}"))
                    .collect();
                    format!("{} of {} tasks", parts.join(", "), c.total)
                };
                let status = match end.status {
                    OrchestrationStatus::Completed => "completed",
                    OrchestrationStatus::Failed => "failed",
                    OrchestrationStatus::Cancelled => "cancelled",
                    OrchestrationStatus::Pending | OrchestrationStatus::Running => "finished",
                };
                Some((format!("Orchestration {status}: {who}"), format!("{tally} · ${:.4}", end.cost_usd)))
            }
            Event::WorkPaused(pause) => Some((
                "Paused: usage limit".to_owned(),
                format!(
                    "{}; queued tasks wait, running ones go on.\n{}",
                    usage_limit::describe(pause.kind.as_deref(), pause.until, crate::time::now_ms()),
                    usage_limit::WHAT_TO_DO
                ),
            )),
            Event::WorkResumed(pause) => Some((
                "Resumed after the usage limit".to_owned(),
                format!(
                    "the {} usage limit has reset: queued tasks start again",
                    usage_limit::kind_words(pause.kind.as_deref())
                ),
            )),
        }
    }
}

/// The executor's handle on sounds and notifications. Cheap to clone.
#[derive(Clone, Default)]
pub struct Feedback {
    sound: Option<SyncSender<(&'static str, Cue)>>,
    desktop: Option<SyncSender<(&'static str, String, String)>>,
    shared: Arc<Shared>,
}

/// What the output threads share with the handle.
#[derive(Default)]
pub(crate) struct Shared {
    /// The feedback log, when `CLAUDE_WORKER_FEEDBACK_LOG` names one.
    seam: Option<Seam>,
    /// Events queued or being played or shown.
    pending: AtomicUsize,
}

impl Shared {
    /// Records one line in the feedback log, if there is one.
    pub(crate) fn record(&self, line: &Value) {
        if let Some(seam) = &self.seam {
            seam.record(line);
        }
    }

    /// An output finished with an event.
    pub(crate) fn done(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Feedback {
    /// Starts the outputs the configuration enables. The sound files are loaded and checked on
    /// the sound thread as it starts (a broken one is reported there, once).
    pub fn new(config: &Config) -> Feedback {
        let seam = config.feedback_log.clone().map(|path| Seam { path, lock: Mutex::new(()) });
        let shared = Arc::new(Shared { seam, pending: AtomicUsize::new(0) });
        Feedback {
            sound: if config.enable_sounds { sound::start(&config.sound_files, shared.clone(), QUEUE) } else { None },
            desktop: if config.enable_notifications { desktop::start(shared.clone(), QUEUE) } else { None },
            shared,
        }
    }

    /// Waits (at most `limit`) until the events emitted so far were played and shown: a worker
    /// that exits once the queue is done still announces its last task.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A handle that does nothing.
    pub fn disabled() -> Feedback {
        Feedback::default()
    }

    /// Hands an event to the outputs without waiting; dropped where an output is busy.
    pub fn emit(&self, event: &Event) {
        if let Some(queue) = &self.sound {
            self.offer(queue, (event.name(), event.cue()), "sound");
        }
        if let (Some(queue), Some((title, body))) = (&self.desktop, event.notification()) {
            self.offer(queue, (event.name(), title, body), "notification");
        }
    }

    fn offer<T>(&self, queue: &SyncSender<T>, item: T, what: &str) {
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        match queue.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.done();
                tracing::debug!("the {what} output is busy: an event was dropped");
            }
            Err(TrySendError::Disconnected(_)) => self.shared.done(),
        }
    }

    /// Emits what an accepted outcome means: the task completed, or failed for good, and perhaps
    /// its orchestration finished.
    pub fn finished(
        &self,
        task: &TaskRecord,
        finish: &Finish,
        outcome: &FinishOutcome,
        elapsed: Duration,
        cost_usd: f64,
    ) {
        if self.sound.is_none() && self.desktop.is_none() {
            return;
        }
        let (task_id, identifier) = (task.task_id, task.task_identifier.clone());
        match (outcome.status, finish) {
            (Some(TaskStatus::Completed), Finish::Completed { result }) => {
                self.emit(&Event::TaskCompleted { task_id, identifier, elapsed, cost_usd, result: result.clone() })
            }
            (Some(TaskStatus::Failed), Finish::Failed { error }) => {
                self.emit(&Event::TaskFailed { task_id, identifier, elapsed, cost_usd, error: error.clone() });
            }
            _ => {}
        }
        if let Some(pause) = &outcome.pause_started {
            self.emit(&Event::WorkPaused(pause.clone()));
        }
        self.orchestration_ended(outcome.orchestration_finished.as_ref());
    }

    /// Announces the end of an orchestration, however it ended (last task, cancel, deadline).
    pub fn orchestration_ended(&self, end: Option<&OrchestrationEnd>) {
        // A task created alone has an orchestration of its own: its end is the task's end, and
        // is not announced twice.
        if let Some(end) = end
            && end.counters.total > 1
        {
            self.emit(&Event::OrchestrationFinished(end.clone()));
        }
    }
}

/// The feedback log: one JSON line per sound played and notification shown.
struct Seam {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Seam {
    fn record(&self, line: &Value) {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // It holds task results: private, like every file claude-worker writes.
        // Never through a link, and only a regular file of this user's (it may be anywhere).
        let written =
            crate::files::open_append(&self.path).and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::debug!("cannot write the feedback log {}: {e}", self.path.display());
        }
    }
}

/// The first line of `text` with words in it, at most 200 characters.
fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut short: String = line.chars().take(200).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = d.as_secs();
        if whole < 3600 {
            format!("{} min {} s", whole / 60, whole % 60)
        } else {
            format!("{} h {} min", whole / 3600, whole % 3600 / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Counters;

    #[test]
    fn notifications_say_who_how_long_what_it_cost_and_the_first_line() {
        let done = Event::TaskCompleted {
            task_id: 7,
            identifier: "api".to_owned(),
            elapsed: Duration::from_millis(12_340),
            cost_usd: 0.0123,
            result: Some("\n  Built the API.  \nDetails follow".to_owned()),
        };
        let (title, body) = done.notification().expect("shown");
        assert_eq!(title, "Completed: api");
        assert_eq!(body, "in 12.3 s · $0.0123\nBuilt the API.");
        assert_eq!(done.cue(), Cue::Success);

        let failed = Event::TaskFailed {
            task_id: 8,
            identifier: "db".to_owned(),
            elapsed: Duration::from_secs(125),
            cost_usd: 0.0,
            error: TaskError { kind: crate::model::ErrorKind::Auth, message: "Invalid API key\nmore".to_owned() },
        };
        let (title, body) = failed.notification().expect("shown");
        assert_eq!(title, "Failed: db");
        assert_eq!(body, "after 2 min 5 s · $0.0000\nauth: Invalid API key");

        let started = Event::TaskStarted { task_id: 9, identifier: "x".to_owned() };
        assert!(started.notification().is_none());
        assert_eq!(started.cue(), Cue::Start);
    }

    #[test]
    fn an_orchestration_notification_tallies_its_tasks() {
        let mut counters = Counters::default();
        counters.add(TaskStatus::Completed, 2);
        counters.add(TaskStatus::Failed, 1);
        counters.add(TaskStatus::Skipped, 1);
        let end = OrchestrationEnd {
            orchestration_id: 3,
            name: None,
            status: OrchestrationStatus::Failed,
            counters,
            cost_usd: 0.42,
        };
        let (title, body) = Event::OrchestrationFinished(end).notification().expect("shown");
        assert_eq!(title, "Orchestration failed: #3");
        assert_eq!(body, "2 completed, 1 failed, 1 skipped of 4 tasks · $0.4200");
    }

    #[test]
    fn long_first_lines_are_cut() {
        let line = first_line(&"x".repeat(500)).expect("a line");
        assert_eq!(line.chars().count(), 201);
        assert!(first_line(" \n \n").is_none());
    }
}
