//! The dashboard's page and assets, embedded in the binary: no network at run time and no build
//! step. The page is plain HTML, CSS and JavaScript (`assets/`); the colours of the states are
//! made from [`crate::drawing::state_css`]. They are served with a Content-Security-Policy that
//! allows only this server's own scripts, styles and connections.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Only this server's own resources; nothing inline, nothing framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX.to_owned()) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT.to_owned()) }))
        .route("/assets/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE.to_owned()) }))
        .route("/assets/states.css", get(|| async { asset("text/css; charset=utf-8", crate::drawing::state_css()) }))
}

fn asset(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    // A new binary may bring a new page: always asked again (they are small).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
