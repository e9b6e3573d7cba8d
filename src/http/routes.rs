//! The handlers of `/api/v1` and `/health`: each reads its path, query and JSON body into the
//! shapes the MCP tools take (`api::wire`), calls the same verb in [`crate::api`], and answers
//! with the same JSON, or with a 4xx or 5xx whose body is `{"error": "..."}` saying what to fix.
//! Callers are in the server's project (its working directory), as a stdio server's callers are
//! without roots.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};

use super::openapi::{CancelBody, ErrorBody, Health, LogQuery, Login, OutputQuery, RetryBody};
use super::{App, access};
use crate::api::dashboard;
use crate::api::wire::{
    CancelArgs, CreateOrchestrationArgs, CreateTaskArgs, ListOrchestrationsArgs, ListTasksArgs, OutputArgs, RetryArgs,
    TaskArg,
};
use crate::api::{self, ApiError, Fault};
use crate::service::Target;

/// An answer: a JSON body with its status.
pub struct Answer(Response);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.0
    }
}

/// A call that failed: answered with the status its fault calls for.
pub struct Failed(ApiError);

impl From<ApiError> for Failed {
    fn from(e: ApiError) -> Failed {
        Failed(e)
    }
}

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        let status = match self.0.fault {
            Fault::Invalid => StatusCode::BAD_REQUEST,
            Fault::NotFound => StatusCode::NOT_FOUND,
            Fault::Conflict => StatusCode::CONFLICT,
            Fault::Gone => StatusCode::SERVICE_UNAVAILABLE,
            Fault::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.0.message)
    }
}

/// An error response.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody { error: message.into() })).into_response()
}

type Result<T> = std::result::Result<T, Failed>;

fn ok<T: serde::Serialize>(status: StatusCode, value: T) -> Result<Answer> {
    Ok(Answer((status, Json(value)).into_response()))
}

/// A request's body, read whole within its route's bound; beyond it, a 413 that says why.
pub struct Body(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> std::result::Result<Body, Response> {
        Bytes::from_request(request, state).await.map(Body).map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                error(
                    status,
                    "the body is too large: a task's is bounded by the prompt cap (CLAUDE_WORKER_MAX_PROMPT_BYTES) \
                     and a graph's by that times its tasks (MAX_TASKS_PER_ORCHESTRATION); split the graph",
                )
            } else {
                error(status, format!("cannot read the body: {}", rejection.body_text()))
            }
        })
    }
}

/// A JSON body, parsed with the field at fault named as the MCP tools name it; `None` for an
/// empty body or `null`.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> std::result::Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: Option<T> = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::invalid(format!("invalid body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid field {path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn required<T: DeserializeOwned>(bytes: &Bytes) -> std::result::Result<T, ApiError> {
    body(bytes)?.ok_or_else(|| ApiError::invalid("the request needs a JSON body"))
}

/// A query's fields, parsed into the same shape a tool's arguments are.
fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> std::result::Result<T, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(T::default()),
        Some(raw) => serde_urlencoded::from_str(raw).map_err(|e| ApiError::invalid(format!("invalid query: {e}"))),
    }
}

fn orchestration_id(raw: &str) -> std::result::Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError {
        fault: Fault::NotFound,
        message: format!("no orchestration {raw:?}: orchestration ids are whole numbers"),
    })
}

/// A task in a path: its id (`12`), `#12`, or its identifier in the server's project.
fn task(raw: String) -> TaskArg {
    match raw.parse::<i64>() {
        Ok(id) => TaskArg::Id(id),
        Err(_) => TaskArg::Name(raw),
    }
}

pub async fn health(State(app): State<App>) -> Result<Answer> {
    // One read: a database that was deleted or replaced is not healthy.
    app.service.usage_limits().await.map_err(ApiError::from)?;
    ok(StatusCode::OK, Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

pub async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

pub async fn create_orchestration(State(app): State<App>, Body(bytes): Body) -> Result<Answer> {
    let args: CreateOrchestrationArgs = required(&bytes)?;
    if args.tasks.is_empty() {
        return Err(ApiError::invalid("tasks: the workflow has no tasks").into());
    }
    ok(StatusCode::CREATED, api::create_orchestration(&app.service, args).await?)
}

pub async fn list_orchestrations(State(app): State<App>, RawQuery(raw): RawQuery) -> Result<Answer> {
    let args: ListOrchestrationsArgs = query(raw)?;
    ok(StatusCode::OK, api::list_orchestrations(&app.service, args).await?)
}

pub async fn orchestration(State(app): State<App>, Path(id): Path<String>) -> Result<Answer> {
    let target = Target::Orchestration(orchestration_id(&id)?);
    ok(StatusCode::OK, api::status_of(&app.service, &target).await?)
}

pub async fn cancel_orchestration(State(app): State<App>, Path(id): Path<String>, Body(bytes): Body) -> Result<Answer> {
    let id = orchestration_id(&id)?;
    let CancelBody { reason } = body(&bytes)?.unwrap_or_default();
    let args = CancelArgs { task: None, orchestration_id: Some(id), reason };
    ok(StatusCode::OK, api::cancel(&app.service, args).await?)
}

pub async fn retry_orchestration(State(app): State<App>, Path(id): Path<String>, Body(bytes): Body) -> Result<Answer> {
    let id = orchestration_id(&id)?;
    let RetryBody { max_budget_usd } = body(&bytes)?.unwrap_or_default();
    let args = RetryArgs { task: None, orchestration_id: Some(id), max_budget_usd };
    ok(StatusCode::OK, api::retry(&app.service, args).await?)
}

pub async fn create_task(State(app): State<App>, Body(bytes): Body) -> Result<Answer> {
    let args: CreateTaskArgs = required(&bytes)?;
    ok(StatusCode::CREATED, api::create_task(&app.service, args).await?)
}

pub async fn list_tasks(State(app): State<App>, RawQuery(raw): RawQuery) -> Result<Answer> {
    let args: ListTasksArgs = query(raw)?;
    ok(StatusCode::OK, api::list_tasks(&app.service, args).await?)
}

pub async fn task_status(State(app): State<App>, Path(raw): Path<String>) -> Result<Answer> {
    let target = Target::Task(task(raw).to_ref());
    ok(StatusCode::OK, api::status_of(&app.service, &target).await?)
}

pub async fn task_output(State(app): State<App>, Path(raw): Path<String>, RawQuery(q): RawQuery) -> Result<Answer> {
    let OutputQuery { tail_lines } = query(q)?;
    ok(StatusCode::OK, api::output(&app.service, OutputArgs { task: task(raw), tail_lines }).await?)
}

pub async fn cancel_task(State(app): State<App>, Path(raw): Path<String>, Body(bytes): Body) -> Result<Answer> {
    let CancelBody { reason } = body(&bytes)?.unwrap_or_default();
    let args = CancelArgs { task: Some(task(raw)), orchestration_id: None, reason };
    ok(StatusCode::OK, api::cancel(&app.service, args).await?)
}

pub async fn retry_task(State(app): State<App>, Path(raw): Path<String>) -> Result<Answer> {
    let args = RetryArgs { task: Some(task(raw)), orchestration_id: None, max_budget_usd: None };
    ok(StatusCode::OK, api::retry(&app.service, args).await?)
}

pub async fn graph(State(app): State<App>, Path(id): Path<String>) -> Result<Answer> {
    ok(StatusCode::OK, dashboard::graph(&app.service, orchestration_id(&id)?).await?)
}

pub async fn task_details(State(app): State<App>, Path(raw): Path<String>) -> Result<Answer> {
    ok(StatusCode::OK, dashboard::details(&app.service, task(raw)).await?)
}

pub async fn task_log(State(app): State<App>, Path(raw): Path<String>, RawQuery(q): RawQuery) -> Result<Response> {
    let LogQuery { log, from, format } = query(q)?;
    let detailed = match log.as_deref() {
        None | Some("summary") => false,
        Some("detailed") => true,
        Some(other) => return Err(ApiError::invalid(format!("log {other:?} is not summary or detailed")).into()),
    };
    match format.as_deref() {
        None | Some("json") => {
            let piece = dashboard::log_piece(&app.service, task(raw), detailed, from.unwrap_or(0)).await?;
            Ok(Json(piece).into_response())
        }
        Some("text") => {
            let path = dashboard::log_file(&app.service, task(raw), detailed).await?;
            Ok(whole_log(path, from.unwrap_or(0)).await)
        }
        Some(other) => Err(ApiError::invalid(format!("format {other:?} is not json or text")).into()),
    }
}

/// A log file from byte `from` to its end, streamed as text (a detailed log is bounded by
/// CLAUDE_WORKER_MAX_LOG_MB; it is never read into memory whole). Opened as every file of
/// claude-worker's is read: never through a link.
async fn whole_log(path: std::path::PathBuf, from: u64) -> Response {
    use tokio::io::AsyncSeekExt as _;
    let opened = tokio::task::spawn_blocking(move || crate::files::open_read(&path)).await;
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match opened {
        Ok(Ok(file)) => {
            let mut file = tokio::fs::File::from_std(file);
            if from > 0 && file.seek(std::io::SeekFrom::Start(from)).await.is_err() {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the log");
            }
            (text, axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file))).into_response()
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (text, String::new()).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
    }
}

pub async fn resume(State(app): State<App>) -> Result<Answer> {
    ok(StatusCode::OK, dashboard::resume(&app.service).await?)
}

/// How long a burst of changes settles before the event goes out (the watch keeps only the
/// latest, so nothing is lost).
const EVENT_COALESCE: Duration = Duration::from_millis(10);
/// A comment line this often keeps proxies and browsers from closing a quiet stream.
const EVENT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Server-sent events: `change` (its data a counter) after every change the executor reports
/// (the same stream MCP resource subscriptions follow), once at the start; the page then reads
/// what it shows again. Ends when the server stops.
pub async fn events(State(app): State<App>) -> Response {
    let Some(changes) = app.service.changes() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "this server has no executor to follow");
    };
    let shutdown = app.shutdown.clone();
    let stream = futures::stream::unfold((changes, true), move |(mut changes, first)| {
        let shutdown = shutdown.clone();
        async move {
            if !first {
                tokio::select! {
                    changed = changes.changed() => changed.ok()?,
                    () = shutdown.cancelled() => return None,
                }
                tokio::time::sleep(EVENT_COALESCE).await;
            }
            let seq = *changes.borrow_and_update();
            let event = Event::default().event("change").data(seq.to_string());
            Some((Ok::<_, std::convert::Infallible>(event), (changes, false)))
        }
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENT_KEEP_ALIVE)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The dashboard's sign-in: the token, checked, kept in an HttpOnly, SameSite=Strict cookie.
pub async fn login(State(app): State<App>, Body(bytes): Body) -> Result<Response> {
    let Login { token } = required(&bytes)?;
    match app.access.token() {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(_) if app.access.is_token(&token) => {
            let cookie = format!("{}={}; HttpOnly; SameSite=Strict; Path=/", access::COOKIE, token.trim());
            let mut response = StatusCode::NO_CONTENT.into_response();
            let value = HeaderValue::from_str(&cookie)
                .map_err(|_| ApiError::invalid("the token has characters a cookie cannot hold"))?;
            response.headers_mut().insert(header::SET_COOKIE, value);
            Ok(response)
        }
        Some(_) => Ok(error(StatusCode::UNAUTHORIZED, "wrong token")),
    }
}

/// Anything else.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route: the API is under /api/v1 (see /api/v1/openapi.json)")
}
