//! MCP resources: `claude-worker://tasks/{id}`, `claude-worker://tasks/{id}/log` and
//! `claude-worker://orchestrations/{id}`, so that a user can @-mention a task in Claude Code.
//! Here are the URIs, the templates, the listing (the newest tasks and orchestrations), reading
//! (the task and orchestration as JSON, the same shape `get_status` returns; the log as text),
//! and watching: [`Watcher`] compares the marks of the watched resources after every change the
//! executor reports and says which moved. A task moves when its state or attempt changes, its log
//! also when its current action changes, an orchestration when its state or the count of its
//! tasks in any state changes; the list changes when a task or orchestration is created.

use std::collections::HashMap;
use std::fmt;

use rmcp::ErrorData;
use rmcp::model::{
    CacheScope, ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate,
};

use crate::api::wire::StatusOut;
use crate::model::{OrchestrationId, TaskId, TaskRef};
use crate::service::{Service, ServiceError, Target};
use crate::store::{Marks, OrchestrationFilter, OrchestrationMark, TaskFilter, TaskMark};

const SCHEME: &str = "claude-worker://";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain";
/// How many of the newest tasks and orchestrations `resources/list` shows.
const LISTED_TASKS: u32 = 50;
const LISTED_ORCHESTRATIONS: u32 = 20;

/// A resource of ours, parsed from its URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceUri {
    Task(TaskId),
    TaskLog(TaskId),
    Orchestration(OrchestrationId),
}

impl ResourceUri {
    /// `None` for anything but one of our three forms with a positive decimal id.
    pub fn parse(uri: &str) -> Option<ResourceUri> {
        let rest = uri.strip_prefix(SCHEME)?;
        let id = |text: &str| -> Option<i64> {
            if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok().filter(|id| *id > 0)
        };
        let mut parts = rest.split('/');
        let uri = match (parts.next()?, parts.next()?, parts.next()) {
            ("tasks", task, None) => ResourceUri::Task(id(task)?),
            ("tasks", task, Some("log")) => ResourceUri::TaskLog(id(task)?),
            ("orchestrations", orchestration, None) => ResourceUri::Orchestration(id(orchestration)?),
            _ => return None,
        };
        parts.next().is_none().then_some(uri)
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceUri::Task(id) => write!(f, "{SCHEME}tasks/{id}"),
            ResourceUri::TaskLog(id) => write!(f, "{SCHEME}tasks/{id}/log"),
            ResourceUri::Orchestration(id) => write!(f, "{SCHEME}orchestrations/{id}"),
        }
    }
}

/// The JSON-RPC error for a URI that names nothing of ours (`-32002`; rmcp turns it into
/// `-32602` for 2026-07-28 sessions, as that revision asks).
pub fn not_found(uri: &str, why: &str) -> ErrorData {
    ErrorData::resource_not_found(format!("Resource not found: {uri}: {why}"), Some(serde_json::json!({ "uri": uri })))
}

const MALFORMED: &str = "resources are claude-worker://tasks/{id}, claude-worker://tasks/{id}/log and \
                         claude-worker://orchestrations/{id}, with a numeric id";

/// Parses a URI a client sent, or the error to answer.
pub fn parse_or_error(uri: &str) -> Result<ResourceUri, ErrorData> {
    ResourceUri::parse(uri).ok_or_else(|| not_found(uri, MALFORMED))
}

fn cache_hints(context_version_new: bool) -> Option<(u64, CacheScope)> {
    context_version_new.then_some((0, CacheScope::Private))
}

pub fn templates(new_protocol: bool) -> ListResourceTemplatesResult {
    let mut result = ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(format!("{SCHEME}tasks/{{id}}"), "task")
            .with_title("Task")
            .with_description("A task's state, result, error, cost and dependencies (as get_status returns them)")
            .with_mime_type(JSON),
        ResourceTemplate::new(format!("{SCHEME}tasks/{{id}}/log"), "task_log")
            .with_title("Task log")
            .with_description("The end of a task's summary log: one line per step it took")
            .with_mime_type(TEXT),
        ResourceTemplate::new(format!("{SCHEME}orchestrations/{{id}}"), "orchestration")
            .with_title("Orchestration")
            .with_description("An orchestration's state, counters, cost and tasks (as get_status returns them)")
            .with_mime_type(JSON),
    ]);
    if new_protocol {
        result = result.with_ttl_ms(0).with_cache_scope(CacheScope::Public);
    }
    result
}

fn internal(e: ServiceError) -> ErrorData {
    tracing::error!("resource read: {e}");
    ErrorData::internal_error(format!("claude-worker could not read the resource: {e}"), None)
}

/// The newest tasks and orchestrations, newest first.
pub async fn list(service: &Service, new_protocol: bool) -> Result<ListResourcesResult, ErrorData> {
    let orchestrations = service
        .list_orchestrations(OrchestrationFilter {
            status: None,
            project: Some(service.project().clone()),
            limit: LISTED_ORCHESTRATIONS,
        })
        .await
        .map_err(internal)?;
    let tasks = service
        .list_tasks(TaskFilter {
            status: None,
            orchestration_id: None,
            project: Some(service.project().clone()),
            limit: LISTED_TASKS,
        })
        .await
        .map_err(internal)?;
    let mut resources = Vec::with_capacity(tasks.len() + orchestrations.len());
    for t in &tasks {
        resources.push(
            Resource::new(ResourceUri::Task(t.task_id).to_string(), t.task_identifier.clone())
                .with_title(format!("Task #{} {}", t.task_id, t.task_identifier))
                .with_description(format!(
                    "Task {} (#{}) of orchestration {}: state, result, error and cost",
                    t.task_identifier, t.task_id, t.orchestration_id
                ))
                .with_mime_type(JSON),
        );
    }
    for o in &orchestrations {
        let label = o.name.clone().unwrap_or_else(|| format!("orchestration-{}", o.orchestration_id));
        resources.push(
            Resource::new(ResourceUri::Orchestration(o.orchestration_id).to_string(), label.clone())
                .with_title(format!("Orchestration {} {label}", o.orchestration_id))
                .with_description(format!(
                    "Orchestration {} ({}): state, counters, cost and tasks",
                    o.orchestration_id,
                    crate::text::count(u64::from(o.counters.total), "task")
                ))
                .with_mime_type(JSON),
        );
    }
    let mut result = ListResourcesResult::with_all_items(resources);
    if let Some((ttl, scope)) = cache_hints(new_protocol) {
        result = result.with_ttl_ms(ttl).with_cache_scope(scope);
    }
    Ok(result)
}

/// Reads one resource.
pub async fn read(service: &Service, uri: &str, new_protocol: bool) -> Result<ReadResourceResult, ErrorData> {
    let parsed = parse_or_error(uri)?;
    let found = |e: ServiceError| match e {
        ServiceError::NotFound(_) | ServiceError::Invalid(_) | ServiceError::Taken(_) => match parsed {
            ResourceUri::Task(id) | ResourceUri::TaskLog(id) => not_found(uri, &format!("there is no task {id}")),
            ResourceUri::Orchestration(id) => not_found(uri, &format!("there is no orchestration {id}")),
        },
        e => internal(e),
    };
    let contents = match parsed {
        ResourceUri::Task(id) => {
            let status = service.status(&Target::Task(TaskRef::Id(id))).await.map_err(found)?;
            let limits = service.usage_limits().await.map_err(internal)?;
            json_contents(uri, &StatusOut::from_status(&status).with_pause(&limits, crate::time::now_ms()))?
        }
        ResourceUri::Orchestration(id) => {
            let status = service.status(&Target::Orchestration(id)).await.map_err(found)?;
            let limits = service.usage_limits().await.map_err(internal)?;
            json_contents(uri, &StatusOut::from_status(&status).with_pause(&limits, crate::time::now_ms()))?
        }
        ResourceUri::TaskLog(id) => {
            let (view, mut text, cut) = service.log_tail(TaskRef::Id(id)).await.map_err(found)?;
            if cut {
                text.insert_str(0, &format!("[earlier lines left out: see {}]\n", view.logs.summary.display()));
            }
            ResourceContents::text(text, uri)
        }
    };
    let mut result = ReadResourceResult::new(vec![contents]);
    if let Some((ttl, scope)) = cache_hints(new_protocol) {
        result = result.with_ttl_ms(ttl).with_cache_scope(scope);
    }
    Ok(result)
}

fn json_contents(uri: &str, value: &StatusOut) -> Result<ResourceContents, ErrorData> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ErrorData::internal_error(format!("cannot serialize {uri}: {e}"), None))?;
    Ok(ResourceContents::text(text, uri).with_mime_type(JSON))
}

/// What a watcher last saw of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Task(crate::model::TaskStatus, u32),
    Log(TaskMark),
    Orchestration(OrchestrationMark),
}

impl Seen {
    fn of(uri: ResourceUri, marks: &Marks) -> Seen {
        let task = |id: TaskId| marks.tasks.iter().find(|(t, _)| *t == id).and_then(|(_, m)| m.clone());
        match uri {
            ResourceUri::Task(id) => task(id).map_or(Seen::Missing, |m| Seen::Task(m.status, m.attempt)),
            ResourceUri::TaskLog(id) => task(id).map_or(Seen::Missing, Seen::Log),
            ResourceUri::Orchestration(id) => marks
                .orchestrations
                .iter()
                .find(|(o, _)| *o == id)
                .and_then(|(_, m)| m.clone())
                .map_or(Seen::Missing, Seen::Orchestration),
        }
    }
}

/// The ids to read marks for.
fn ids(uris: &[ResourceUri]) -> (Vec<TaskId>, Vec<OrchestrationId>) {
    let mut tasks = Vec::new();
    let mut orchestrations = Vec::new();
    for uri in uris {
        match *uri {
            ResourceUri::Task(id) | ResourceUri::TaskLog(id) => tasks.push(id),
            ResourceUri::Orchestration(id) => orchestrations.push(id),
        }
    }
    tasks.sort_unstable();
    tasks.dedup();
    orchestrations.sort_unstable();
    orchestrations.dedup();
    (tasks, orchestrations)
}

/// What moved since the last look.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub updated: Vec<ResourceUri>,
    pub list_changed: bool,
}

/// Remembers what the watched resources looked like and tells which moved.
#[derive(Debug, Default)]
pub struct Watcher {
    seen: HashMap<ResourceUri, Seen>,
    newest: Option<(Option<TaskId>, Option<OrchestrationId>)>,
}

impl Watcher {
    /// A watcher of `uris` as they are now.
    pub async fn start(service: &Service, uris: &[ResourceUri]) -> Result<Watcher, ServiceError> {
        let marks = Watcher::read(service, uris).await?;
        let seen = uris.iter().map(|uri| (*uri, Seen::of(*uri, &marks))).collect();
        Ok(Watcher { seen, newest: Some((marks.newest_task, marks.newest_orchestration)) })
    }

    /// Starts watching `uri` as it is now.
    pub async fn watch(&mut self, service: &Service, uri: ResourceUri) -> Result<(), ServiceError> {
        let (tasks, orchestrations) = ids(&[uri]);
        let marks = service.marks(tasks, orchestrations).await?;
        self.seen.insert(uri, Seen::of(uri, &marks));
        self.newest.get_or_insert((marks.newest_task, marks.newest_orchestration));
        Ok(())
    }

    pub fn unwatch(&mut self, uri: ResourceUri) {
        self.seen.remove(&uri);
    }

    pub fn uris(&self) -> Vec<ResourceUri> {
        self.seen.keys().copied().collect()
    }

    /// Reads the marks of `uris` (a snapshot of what is watched, taken by the caller).
    pub async fn read(service: &Service, uris: &[ResourceUri]) -> Result<Marks, ServiceError> {
        let (tasks, orchestrations) = ids(uris);
        service.marks(tasks, orchestrations).await
    }

    /// Compares `marks` with what was seen and remembers them; resources no longer watched are
    /// left alone.
    pub fn compare(&mut self, marks: &Marks) -> Moved {
        let mut moved = Moved::default();
        for (uri, seen) in &mut self.seen {
            let now = Seen::of(*uri, marks);
            if *seen != now {
                *seen = now;
                moved.updated.push(*uri);
            }
        }
        moved.updated.sort_by_key(ToString::to_string);
        let newest = (marks.newest_task, marks.newest_orchestration);
        moved.list_changed = self.newest.is_some_and(|before| before != newest);
        self.newest = Some(newest);
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrchestrationStatus, TaskStatus};

    #[test]
    fn uris_parse_and_print_back() {
        for text in ["claude-worker://tasks/12", "claude-worker://tasks/12/log", "claude-worker://orchestrations/3"] {
            let uri = ResourceUri::parse(text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!(uri.to_string(), text);
        }
        assert_eq!(ResourceUri::parse("claude-worker://tasks/12/log"), Some(ResourceUri::TaskLog(12)));
        for bad in [
            "claude-worker://tasks/",
            "claude-worker://tasks/0",
            "claude-worker://tasks/-1",
            "claude-worker://tasks/+1",
            "claude-worker://tasks/build_api",
            "claude-worker://tasks/12/",
            "claude-worker://tasks/12/log/more",
            "claude-worker://tasks/12/detail",
            "claude-worker://tasks/12?x=1",
            "claude-worker://orchestrations/3/log",
            "claude-worker://orchestrations/99999999999999999999",
            "claude-worker://other/1",
            "file:///tasks/1",
            "",
        ] {
            assert_eq!(ResourceUri::parse(bad), None, "{bad}");
        }
    }

    fn marks(task: Option<(TaskStatus, u32, Option<&str>)>, running: u32, newest: i64) -> Marks {
        let counters = crate::model::Counters { total: 1, running, pending: 1 - running, ..Default::default() };
        Marks {
            tasks: vec![(
                1,
                task.map(|(status, attempt, action)| TaskMark {
                    status,
                    attempt,
                    last_action: action.map(str::to_owned),
                }),
            )],
            orchestrations: vec![(
                1,
                Some(OrchestrationMark { orchestration_id: 1, status: OrchestrationStatus::Pending, counters }),
            )],
            newest_task: Some(newest),
            newest_orchestration: Some(1),
        }
    }

    #[test]
    fn a_watcher_tells_what_moved() {
        let mut watcher = Watcher::default();
        for uri in [ResourceUri::Task(1), ResourceUri::TaskLog(1), ResourceUri::Orchestration(1)] {
            watcher.seen.insert(uri, Seen::Missing);
        }
        let first = watcher.compare(&marks(Some((TaskStatus::Pending, 0, None)), 0, 1));
        assert_eq!(first.updated.len(), 3, "all three appeared");
        assert!(!first.list_changed, "the first look sets the baseline");

        let same = watcher.compare(&marks(Some((TaskStatus::Pending, 0, None)), 0, 1));
        assert_eq!(same, Moved::default());

        let action = watcher.compare(&marks(Some((TaskStatus::Pending, 0, Some("Read"))), 0, 1));
        assert_eq!(action.updated, vec![ResourceUri::TaskLog(1)], "a new action moves only the log");

        let running = watcher.compare(&marks(Some((TaskStatus::Running, 1, Some("Read"))), 1, 2));
        assert_eq!(running.updated.len(), 3, "a new state moves all three: {running:?}");
        assert!(running.list_changed, "a newer task changes the list");

        watcher.unwatch(ResourceUri::Task(1));
        let done = watcher.compare(&marks(Some((TaskStatus::Completed, 1, Some("Read"))), 0, 2));
        assert!(!done.updated.contains(&ResourceUri::Task(1)), "no longer watched");
    }
}
