//! The only module that knows MCP. It serves the tools over stdio with rmcp, to clients using the
//! `initialize` handshake and to those using the 2026-07-28 `server/discover` lifecycle (rmcp
//! answers `server/discover` from [`ServerHandler::get_info`]). Each tool parses its arguments
//! (see `wire.rs`), calls the [`Service`], and returns `structuredContent` plus the same JSON as
//! text. A mistake the caller can fix comes back as a result with `isError: true` and a sentence
//! that says what to do; only protocol faults are JSON-RPC errors. It also serves resources
//! (`resources.rs`: tasks, their logs and orchestrations, with update notifications through
//! `resources/subscribe` in `initialize` sessions and `subscriptions/listen` in 2026-07-28 ones)
//! and the `plan_orchestration` prompt (`prompts.rs`).

pub mod http;
mod prompts;
mod resources;
mod schema;
pub mod transport;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CacheScope, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ResourceUpdatedNotificationParam,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Json, Peer, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use std::sync::Arc;
use std::time::Duration;

use crate::api::wire::{
    CancelArgs, CancelOut, CreateOrchestrationArgs, CreateOrchestrationOut, CreateTaskArgs, CreateTaskOut,
    ListOrchestrationsArgs, ListOrchestrationsOut, ListTasksArgs, ListTasksOut, OutputArgs, OutputOut, RetryArgs,
    RetryOut, StatusArgs, StatusOut, WaitArgs,
};
use crate::api::{self, wire::parse_args, wire::parse_args_text};
use crate::service::{Service, ServiceError};
use resources::{ResourceUri, Watcher};
use rmcp::handler::server::common::schema_for_input;
use rmcp::model::JsonObject;

/// What a model reads once, when it connects.
pub const INSTRUCTIONS: &str = "claude-worker runs Claude Code tasks in the background, so you can keep working.
- create_task(task_identifier, execution_prompt, depends_on=[...]) queues one task; it starts when its dependencies completed. Tasks linked by depends_on form an orchestration.
- create_orchestration(tasks=[...]) queues a whole dependency graph at once, checked before anything is stored.
- Check back with get_status, list_orchestrations or list_tasks; wait blocks until done (at most 600 s per call); get_task_output shows results and logs.
- A failed dependency skips its dependents; retry(task) runs it again and reopens them, retry(orchestration_id) runs every failed, cancelled and skipped task of the orchestration again. cancel stops a task or a whole orchestration.
- An orchestration can have a budget in dollars (max_budget_usd of create_orchestration, orchestration_max_budget_usd of create_task): once its tasks spent it, the rest are skipped with budget_exhausted; retry(orchestration_id, max_budget_usd) raises it and runs them.
- When the account hits its usage limit, queued work waits for the reset instead of failing: statuses show paused_until and paused_reason; it resumes by itself (a person can resume early with `claude-worker-inspect resume`).
- Task identifiers and orchestration names are looked up in this project (the git work tree of your first root or working directory); #<task_id> reaches any task. Lists show this project unless all_projects=true.
- isolation=\"worktree\" (on a task or a whole orchestration) runs each task in a git worktree of its own, started from its dependencies' merged results; the orchestration's results end up on the branch claude-worker/<id>-<name>/integration, and the user's checkout is untouched until a person runs `claude-worker-inspect merge` (or merge_when_done=true). Conflicting results are handed to the next task to resolve (on_conflict=\"fail\" fails it instead).
- verify (a shell command, e.g. \"cargo test\") checks a task after Claude is done and asks it to fix what failed; it is refused unless the server's owner allowed it (CLAUDE_WORKER_ALLOW_VERIFY).
- A dependent's prompt ends with its dependencies' results (include_dependency_results=false leaves it as written); result_schema (a JSON Schema object) makes a task answer with JSON, returned as structured_result and given to its dependents.
- Resources claude-worker://tasks/{id}, claude-worker://tasks/{id}/log and claude-worker://orchestrations/{id} show the same state; the prompt plan_orchestration helps plan a goal.
Prompts must be self-contained: the background Claude does not see this conversation.";

/// Progress is the count of finished tasks; changes within one count step by a thousandth.
const PROGRESS_STEPS: f64 = 1000.0;

/// How long resource watchers let a burst of changes settle before they read.
const CHANGE_COALESCE: std::time::Duration = std::time::Duration::from_millis(30);
/// How often resource watchers look when there is no executor to tell them of changes.
const WATCH_RECHECK: Duration = Duration::from_secs(1);

/// The MCP server: the tools, resources and prompts over the [`Service`].
#[derive(Clone)]
pub struct ClaudeWorkerServer {
    service: Service,
    tool_router: ToolRouter<ClaudeWorkerServer>,
    /// What this session subscribed to with `resources/subscribe`.
    subscribed: Arc<tokio::sync::Mutex<Watcher>>,
    /// Set once the task that notifies subscribers runs.
    notifying: Arc<std::sync::atomic::AtomicBool>,
    /// The session's caller, once known: the client's first root when it offers roots (its
    /// project, and the default working directory), else the server's working directory.
    /// Forgotten when the roots change.
    session: Arc<tokio::sync::Mutex<Option<Service>>>,
}

/// How long the client may take to list its roots before the server's directory is used.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(5);

impl ClaudeWorkerServer {
    pub fn new(service: Service) -> ClaudeWorkerServer {
        let mut tool_router = Self::tool_router();
        schema::standardize_router(&mut tool_router);
        ClaudeWorkerServer {
            service,
            tool_router,
            subscribed: Arc::new(tokio::sync::Mutex::new(Watcher::default())),
            notifying: Arc::default(),
            session: Arc::default(),
        }
    }

    /// The service for this session's caller: scoped to the session's project, found on the
    /// first call that needs it (asking the client for its roots) and kept.
    async fn service(&self, peer: &Peer<RoleServer>) -> Service {
        let mut session = self.session.lock().await;
        if let Some(service) = session.as_ref() {
            return service.clone();
        }
        let service = match Self::first_root(peer).await {
            Some(dir) => self.service.in_directory(dir),
            None => self.service.clone(),
        };
        tracing::debug!("this session's project: {}", service.project());
        *session = Some(service.clone());
        service
    }

    /// The directory of the client's first `file://` root, when it offers roots and lists them.
    #[expect(
        deprecated,
        reason = "roots are deprecated by SEP-2577 but are what Claude Code and most clients offer today"
    )]
    async fn first_root(peer: &Peer<RoleServer>) -> Option<std::path::PathBuf> {
        let offers_roots = peer.peer_info().is_some_and(|info| info.capabilities.roots.is_some());
        if !offers_roots {
            return None;
        }
        let roots = match tokio::time::timeout(ROOTS_TIMEOUT, peer.list_roots()).await {
            Ok(Ok(result)) => result.roots,
            Ok(Err(e)) => {
                tracing::warn!("the client offers roots but did not list them ({e}); using the server's directory");
                return None;
            }
            Err(_) => {
                tracing::warn!("the client did not list its roots in time; using the server's directory");
                return None;
            }
        };
        let dir = roots.first().and_then(|root| root_directory(&root.uri))?;
        // A root that does not exist here (a remote client's path) cannot name a project.
        std::fs::canonicalize(&dir).ok().filter(|d| d.is_dir())
    }

    /// Waits for the next change anywhere (or a moment, without an executor); false once no
    /// more changes can come.
    async fn next_change(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) -> bool {
        match changes {
            Some(rx) => {
                let more = rx.changed().await.is_ok();
                // A task's start or end is a burst of changes: one read of the marks after it,
                // not one per change (the watch keeps only the latest, so nothing is lost).
                tokio::time::sleep(CHANGE_COALESCE).await;
                more
            }
            None => {
                tokio::time::sleep(WATCH_RECHECK).await;
                true
            }
        }
    }

    /// For an `initialize` session: after every change, tells the client which subscribed
    /// resources moved, and that the list changed when a task or orchestration was created.
    /// Ends when the client is gone.
    async fn notify_subscribers(self, peer: Peer<RoleServer>) {
        let mut changes = self.service.changes();
        {
            let mut watcher = self.subscribed.lock().await;
            let uris = watcher.uris();
            if let Ok(marks) = Watcher::read(&self.service, &uris).await {
                watcher.compare(&marks);
            }
        }
        while Self::next_change(&mut changes).await {
            if peer.is_transport_closed() {
                return;
            }
            let moved = {
                let mut watcher = self.subscribed.lock().await;
                let uris = watcher.uris();
                match Watcher::read(&self.service, &uris).await {
                    Ok(marks) => watcher.compare(&marks),
                    Err(e) => {
                        if !lost(&e) {
                            tracing::warn!("cannot read what subscribed resources look like: {e}");
                        }
                        continue;
                    }
                }
            };
            for uri in moved.updated {
                let note = ResourceUpdatedNotificationParam::new(uri.to_string());
                if peer.notify_resource_updated(note).await.is_err() {
                    return;
                }
            }
            if moved.list_changed && peer.notify_resource_list_changed().await.is_err() {
                return;
            }
        }
    }
}

/// The directory a root's URI names: `file://` URIs only (with an empty or `localhost` host),
/// percent-escapes decoded.
fn root_directory(uri: &str) -> Option<std::path::PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    Some(std::path::PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(decoded)))
}

/// True for sessions at 2026-07-28 or later, which take cache hints.
fn new_protocol(context: &RequestContext<RoleServer>) -> bool {
    context.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

fn internal_error(e: impl std::fmt::Display) -> ErrorData {
    tracing::error!("{e}");
    ErrorData::internal_error(format!("claude-worker could not complete the request: {e}"), None)
}

/// Whether the database was deleted or replaced: said once, when it was found, not per request.
fn lost(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Store(e) if e.is_lost())
}

/// A tool's arguments: parsed from their text when the stdio transport kept it aside
/// ([`transport::RawArguments`]), else from rmcp's map (MCP over HTTP). Either way a mistake
/// names the field at fault, in the same words.
fn arguments<T: serde::de::DeserializeOwned>(
    object: JsonObject,
    ctx: &RequestContext<RoleServer>,
) -> Result<T, String> {
    match ctx.extensions.get::<transport::RawArguments>().and_then(transport::RawArguments::take) {
        Some(text) => parse_args_text(&text),
        None => parse_args(object),
    }
}

/// The input schema of a tool whose arguments are parsed by [`parse_args`].
fn input_schema<T: schemars::JsonSchema + 'static>() -> std::sync::Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|e| panic!("invalid input schema for {}: {e}", std::any::type_name::<T>()))
}

#[tool_router]
impl ClaudeWorkerServer {
    /// Queue a Claude Code task. It runs in the background once every depends_on task completed.
    #[tool(input_schema = input_schema::<CreateTaskArgs>())]
    async fn create_task(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CreateTaskOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::create_task(&self.service(&ctx.peer).await, args).await?))
    }

    /// Queue a whole dependency graph at once (workflow.json format). All tasks are checked before any is stored.
    #[tool(input_schema = input_schema::<CreateOrchestrationArgs>())]
    async fn create_orchestration(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CreateOrchestrationOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::create_orchestration(&self.service(&ctx.peer).await, args).await?))
    }

    /// Status of a task (task: identifier or #id) or of an orchestration (orchestration_id), with results, cost and errors.
    #[tool(annotations(read_only_hint = true), input_schema = input_schema::<StatusArgs>())]
    async fn get_status(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<StatusOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::status(&self.service(&ctx.peer).await, args).await?))
    }

    /// List orchestrations, newest first, with live counters and cost.
    #[tool(annotations(read_only_hint = true), input_schema = input_schema::<ListOrchestrationsArgs>())]
    async fn list_orchestrations(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ListOrchestrationsOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::list_orchestrations(&self.service(&ctx.peer).await, args).await?))
    }

    /// List tasks, newest first.
    #[tool(annotations(read_only_hint = true), input_schema = input_schema::<ListTasksArgs>())]
    async fn list_tasks(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ListTasksOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::list_tasks(&self.service(&ctx.peer).await, args).await?))
    }

    /// A task's result, error and the end of its summary log, with the log file paths.
    #[tool(annotations(read_only_hint = true), input_schema = input_schema::<OutputArgs>())]
    async fn get_task_output(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<OutputOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::output(&self.service(&ctx.peer).await, args).await?))
    }

    /// Cancel a task (its dependents are skipped) or a whole orchestration. Running tasks are stopped.
    #[tool(annotations(destructive_hint = true), input_schema = input_schema::<CancelArgs>())]
    async fn cancel(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<CancelOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::cancel(&self.service(&ctx.peer).await, args).await?))
    }

    /// Run a failed or cancelled task again (task), or every failed, cancelled and skipped task of an orchestration (orchestration_id); with max_budget_usd, raise its budget instead.
    #[tool(input_schema = input_schema::<RetryArgs>())]
    async fn retry(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<RetryOut>, String> {
        let args = arguments(args, &ctx)?;
        Ok(Json(api::retry(&self.service(&ctx.peer).await, args).await?))
    }

    /// Block until a task or orchestration finished, or timeout_seconds (default 50, max 600) passed. Sends progress notifications.
    #[tool(annotations(read_only_hint = true), input_schema = input_schema::<WaitArgs>())]
    async fn wait(
        &self,
        Parameters(args): Parameters<JsonObject>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<StatusOut>, String> {
        let wait = api::Wait::new(arguments(args, &ctx)?)?;
        let token = ctx.meta.get_progress_token();
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<(f64, f64, String)>();
        let forwarder = token.map(|token| {
            let peer = ctx.peer.clone();
            tokio::spawn(async move {
                // MCP asks progress to increase with every notification, but a change (a task's
                // new action) need not finish anything: progress is the count of finished
                // tasks, and a change within the same count adds a thousandth.
                let mut last: Option<f64> = None;
                while let Some((done, total, message)) = progress_rx.recv().await {
                    let mut value = done;
                    if let Some(last) = last
                        && value <= last
                    {
                        value = ((last * PROGRESS_STEPS).round() + 1.0) / PROGRESS_STEPS;
                        if value >= done + 1.0 {
                            continue;
                        }
                    }
                    last = Some(value);
                    let note =
                        ProgressNotificationParam::new(token.clone(), value).with_total(total).with_message(message);
                    if peer.notify_progress(note).await.is_err() {
                        break;
                    }
                }
            })
        });
        let service = self.service(&ctx.peer).await;
        let waited = tokio::select! {
            waited = wait.run(&service, |progress| {
                let _ = progress_tx.send(progress);
            }) => waited,
            () = ctx.ct.cancelled() => return Err("the wait was cancelled by the client".to_owned()),
        };
        drop(progress_tx);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        Ok(Json(waited?))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ClaudeWorkerServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("claude-worker", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        // The next call asks for the roots again.
        *self.session.lock().await = None;
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        tracing::debug!("client initialized");
        // A client that says it twice still gets each notification once.
        if !self.notifying.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tokio::spawn(self.clone().notify_subscribers(context.peer));
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut result = ListPromptsResult::with_all_items(prompts::list());
        if new_protocol(&context) {
            result = result.with_ttl_ms(0).with_cache_scope(CacheScope::Public);
        }
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request.name, request.arguments.as_ref()).map(GetPromptResponse::from)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates(new_protocol(&context)))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        resources::list(&self.service(&context.peer).await, new_protocol(&context)).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.service, &request.uri, new_protocol(&context)).await.map(ReadResourceResponse::from)
    }

    /// A well-formed URI may name a task or orchestration that does not exist yet: its
    /// subscriber hears when it appears.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = resources::parse_or_error(&request.uri)?;
        self.subscribed.lock().await.watch(&self.service, uri).await.map_err(internal_error)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = resources::parse_or_error(&request.uri)?;
        self.subscribed.lock().await.unwatch(uri);
        Ok(())
    }

    /// `subscriptions/listen` (2026-07-28): resource updates for our URIs (others are left out of
    /// the acknowledged filter) and resource list changes.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| ResourceUri::parse(uri).is_some())
            .cloned()
            .collect();
        Some(SubscriptionFilter::builder().resources_list_changed().resource_subscriptions(uris).build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let accepted = context.accepted().clone();
        let sink = context.sink().clone();
        let uris: Vec<ResourceUri> =
            accepted.resource_subscriptions.iter().flatten().filter_map(|uri| ResourceUri::parse(uri)).collect();
        let wants_list = accepted.resources_list_changed == Some(true);
        let mut changes = self.service.changes();
        let mut watcher = Watcher::start(&self.service, &uris).await.map_err(internal_error)?;
        // The acknowledgment went out before this first look: something created in between is
        // already in it and would never count as a change. Saying once that the list may have
        // changed closes that gap (a client only lists again).
        if wants_list && sink.notify_resource_list_changed().await.is_err() {
            return Ok(());
        }
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                more = Self::next_change(&mut changes) => if !more { return Ok(()) },
            }
            let moved = match Watcher::read(&self.service, &uris).await {
                Ok(marks) => watcher.compare(&marks),
                Err(e) => {
                    if !lost(&e) {
                        tracing::warn!("cannot read what subscribed resources look like: {e}");
                    }
                    continue;
                }
            };
            for uri in moved.updated {
                if sink.notify_resource_updated(uri.to_string()).await.is_err() {
                    return Ok(());
                }
            }
            if wants_list && moved.list_changed && sink.notify_resource_list_changed().await.is_err() {
                return Ok(());
            }
        }
    }
}
