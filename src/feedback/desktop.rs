//! Desktop notifications through `notify-rust`: on Linux and the BSDs its pure-Rust D-Bus client
//! (zbus, on a small tokio runtime of this module's own thread), elsewhere the platform's API.
//!
//! One thread shows them one at a time, each given a few seconds. Without a desktop session (no
//! D-Bus session bus, no notification server) the first failure is logged as one debug line and
//! the rest stay quiet.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use serde_json::json;

use super::Shared;

/// How long showing one notification may take.
const SHOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the notification thread; `None` (after a warning) when it cannot be started.
pub(super) fn start(shared: Arc<Shared>, queue: usize) -> Option<SyncSender<(&'static str, String, String)>> {
    let (tx, rx) = sync_channel(queue);
    let spawned = std::thread::Builder::new().name("claude-worker-notify".to_owned()).spawn(move || run(&rx, &shared));
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!("cannot start the notification thread ({e}): no desktop notifications");
            None
        }
    }
}

fn run(rx: &Receiver<(&'static str, String, String)>, shared: &Shared) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("cannot start the notifications' runtime ({e}): no desktop notifications");
            while rx.recv().is_ok() {
                shared.done();
            }
            return;
        }
    };
    let mut reported = false;
    while let Ok((event, title, body)) = rx.recv() {
        let shown = runtime.block_on(async {
            match tokio::time::timeout(SHOW_TIMEOUT, show(&title, &body)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {SHOW_TIMEOUT:?}")),
            }
        });
        if let Err(why) = &shown
            && !reported
        {
            reported = true;
            tracing::debug!("cannot show desktop notifications here ({why}); they stay quiet");
        }
        shared.record(&json!({
            "kind": "notification",
            "event": event,
            "title": title,
            "body": body,
            "backend": BACKEND,
            "shown": shown.is_ok(),
            "error": shown.err(),
        }));
        shared.done();
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
const BACKEND: &str = "dbus";
#[cfg(not(all(unix, not(target_os = "macos"))))]
const BACKEND: &str = "native";

#[cfg(all(unix, not(target_os = "macos")))]
async fn show(title: &str, body: &str) -> Result<(), String> {
    notification(title, body).show_async().await.map(drop).map_err(|e| e.to_string())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
async fn show(title: &str, body: &str) -> Result<(), String> {
    let notification = notification(title, body);
    tokio::task::spawn_blocking(move || notification.show().map(drop).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

fn notification(title: &str, body: &str) -> notify_rust::Notification {
    let mut notification = notify_rust::Notification::new();
    let icon =
        if title.starts_with("Failed") || title.contains(" failed") { "dialog-error" } else { "dialog-information" };
    notification.appname("claude-worker").summary(title).body(body).icon(icon);
    notification
}
