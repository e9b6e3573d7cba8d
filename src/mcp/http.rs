//! MCP over Streamable HTTP: the same server (tools, resources, prompts, progress during
//! `wait`) as on stdio, one [`ClaudeWorkerServer`] per session, through rmcp's tower service.
//! The HTTP edge mounts it at `/mcp` behind its own checks of `Host`, `Origin` and the token,
//! so rmcp's host list is not used a second time.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::ClaudeWorkerServer;
use crate::service::Service;

/// The tower service that answers MCP at one path.
pub type McpService = StreamableHttpService<ClaudeWorkerServer, LocalSessionManager>;

/// How long an idle session is kept (a client that vanished without closing it).
const SESSION_IDLE: Duration = Duration::from_secs(300);

/// MCP over Streamable HTTP for `service`'s callers; `shutdown` ends every session.
/// `max_body_bytes` bounds a request (a `create_orchestration` of a large graph is the largest).
pub fn service(service: Service, shutdown: CancellationToken, max_body_bytes: usize) -> McpService {
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(SESSION_IDLE);
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(max_body_bytes);
    StreamableHttpService::new(move || Ok(ClaudeWorkerServer::new(service.clone())), Arc::new(sessions), config)
}
