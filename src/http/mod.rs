//! The HTTP edge (`claude-worker serve --http`): the HTTP API at `/api/v1` (the Python tool's
//! paths and shapes, `routes.rs`, described by `openapi.rs`), `/health`, and whatever serves MCP
//! at `/mcp` (handed in: this module does not know MCP). Like the MCP edge it holds no state or
//! rule of its own: every handler calls a verb of [`crate::api`].
//!
//! Every request passes [`access`] first (`Host`, `Origin`, cross-site changes, the token).
//! Nothing a client does can hold the server: connections are counted (beyond the bound a
//! client gets a 503 at once and is closed), request headers must arrive within seconds and
//! bodies within half a minute, bodies are bounded (the prompt cap applies), and API requests
//! beyond those in flight are answered 503 at once instead of queueing.

pub mod access;
mod dashboard;
mod openapi;
mod routes;
pub mod token;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::config::Config;
use crate::service::Service;
use access::{Access, Asked};

/// Connections served at once; beyond them a client is answered 503 and closed. Room for a
/// thousand dashboards following their events, and more.
const MAX_CONNECTIONS: usize = 4096;
/// API requests handled at once; beyond them the answer is 503 at once.
const MAX_API_IN_FLIGHT: usize = 64;
/// How long a client may take to send a request's headers (a slow client holds nothing longer).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What every handler reaches.
#[derive(Clone)]
pub struct App {
    service: Service,
    access: Arc<Access>,
    /// Ends the event streams, so that shutdown does not wait on them.
    shutdown: CancellationToken,
}

/// The largest bodies accepted: one task's, and a whole graph's (or an MCP message's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    pub task: usize,
    pub batch: usize,
}

impl BodyLimits {
    /// From the prompt cap: a task is its prompt and some options; a batch is its tasks, at most
    /// as many as an orchestration may hold, and never more than stdio's longest line.
    pub fn from_config(config: &Config) -> BodyLimits {
        const OPTIONS: usize = 64 * 1024;
        let task = config.max_prompt_bytes.saturating_add(OPTIONS);
        let tasks = usize::try_from(config.max_tasks_per_orchestration).unwrap_or(usize::MAX);
        let batch = task.saturating_mul(tasks).min(crate::mcp::transport::MAX_LINE_BYTES).max(task);
        BodyLimits { task, batch }
    }
}

impl App {
    pub fn new(service: Service, access: Access, shutdown: CancellationToken) -> App {
        App { service, access: Arc::new(access), shutdown }
    }
}

/// The whole site: the API, `/health`, and `mcp` at `/mcp`, behind the access checks.
pub fn router<M, B>(app: App, mcp: M, limits: BodyLimits) -> Router
where
    M: tower::Service<Request, Response = axum::http::Response<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    M::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let task_body = DefaultBodyLimit::max(limits.task);
    let batch_body = DefaultBodyLimit::max(limits.batch);
    let api = Router::new()
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route(
            "/api/v1/orchestrations",
            get(routes::list_orchestrations).post(routes::create_orchestration).layer(batch_body),
        )
        .route("/api/v1/orchestrations/{id}", get(routes::orchestration))
        .route("/api/v1/orchestrations/{id}/graph", get(routes::graph))
        .route("/api/v1/orchestrations/{id}/cancel", post(routes::cancel_orchestration).layer(task_body))
        .route("/api/v1/orchestrations/{id}/retry", post(routes::retry_orchestration).layer(task_body))
        .route("/api/v1/tasks", get(routes::list_tasks).post(routes::create_task).layer(task_body))
        .route("/api/v1/tasks/{task}", get(routes::task_status))
        .route("/api/v1/tasks/{task}/output", get(routes::task_output))
        .route("/api/v1/tasks/{task}/details", get(routes::task_details))
        .route("/api/v1/tasks/{task}/log", get(routes::task_log))
        .route("/api/v1/resume", post(routes::resume).layer(task_body))
        .route("/login", post(routes::login).layer(task_body))
        .route("/api/v1/tasks/{task}/cancel", post(routes::cancel_task).layer(task_body))
        .route("/api/v1/tasks/{task}/retry", post(routes::retry_task).layer(task_body))
        .route("/health", get(routes::health))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: axum::BoxError| async {
                    routes::error(StatusCode::SERVICE_UNAVAILABLE, "the server is busy: try again in a moment")
                }))
                .load_shed()
                .concurrency_limit(MAX_API_IN_FLIGHT),
        );
    Router::new()
        .merge(api)
        // Long-lived: outside the bound on requests in flight (connections bound them).
        .route("/api/v1/events", get(routes::events))
        .merge(dashboard::routes())
        .nest_service("/mcp", mcp)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .with_state(app)
}

/// The access checks of every request (see [`access`]).
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let path = request.uri().path();
    let asked = Asked {
        safe: matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS),
        private: path.starts_with("/api/") || path == "/mcp" || path.starts_with("/mcp/"),
        host: text(header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str())),
        origin: text(header::ORIGIN),
        fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        authorization: text(header::AUTHORIZATION),
        cookie: text(header::COOKIE),
    };
    match app.access.check(&asked) {
        Ok(()) => {
            let mut response = next.run(request).await;
            secure_headers(response.headers_mut());
            response
        }
        Err(refusal) => {
            tracing::debug!("refused {} {}: {refusal}", request.method(), request.uri().path());
            let status = if refusal.is_unauthenticated() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
            let mut response = routes::error(status, refusal.to_string());
            if refusal.is_unauthenticated() {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// Serves `router` on `listener` until `shutdown`; open connections then get a moment to finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let (router, shutdown) = (router.clone(), shutdown.clone());
                tokio::spawn(async move {
                    connection(stream, router, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(refuse_busy(stream));
            }
        }
    }
    drop(listener);
    // Every connection gives its permit back when it ends.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), connections.acquire_many(all)).await;
}

async fn connection(stream: TcpStream, router: Router, shutdown: CancellationToken) {
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("HTTP connection ended: {e}");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// A connection beyond the bound: told so at once, and closed.
async fn refuse_busy(mut stream: TcpStream) {
    let body = r#"{"error":"the server has too many connections: try again in a moment"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
}

/// The headers every response carries: no sniffing, no framing, no referrer.
fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}
