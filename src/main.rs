//! `claude-worker`: with no arguments, the MCP server on stdio (what `claude mcp add` runs).
//! `claude-worker work` runs the executor alone, headless. This file parses arguments, sets up
//! logging (stderr and the global log, never stdout), and wires the library together; the exit
//! code is decided here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use tokio_util::sync::CancellationToken;

use claude_worker::config::Config;
use claude_worker::executor::Executor;
use claude_worker::mcp::ClaudeWorkerServer;
use claude_worker::service::Service;
use claude_worker::store::{Db, Store};

#[derive(Parser)]
#[command(
    name = "claude-worker",
    version,
    about = "Run Claude Code tasks in the background as a dependency graph (MCP server on stdio)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP on stdio (the default).
    Serve,
    /// Run queued tasks without serving MCP, until stopped (or until idle).
    Work {
        /// Exit once no task is running, ready or waiting.
        #[arg(long)]
        until_idle: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("claude-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _log_guard = claude_worker::logs::init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("claude-worker: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Work { until_idle } => work(config, until_idle).await,
        }
    });
    // Attempts that ignore their stop signals must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The global log gets it; stderr gets it once, without the log prefix.
            tracing::error!(target: "claude_worker::exit", "{e:#}");
            eprintln!("claude-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    let (path, max_pages) = (config.db_path.clone(), config.max_db_pages);
    let store = tokio::task::spawn_blocking(move || Store::open_with(&path, max_pages)).await??;
    Db::spawn(store).context("cannot start the database thread")
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let db = open(&config).await?;
    let executor = Executor::new(db.clone(), config.clone());
    let service = Service::new(db, config.clone(), Some(executor.clone()));
    let shutdown = CancellationToken::new();
    let executor_task = {
        let executor = executor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { executor.run(shutdown).await })
    };
    tracing::info!(owner = executor.owner(), db = %config.db_path.display(), "claude-worker serving MCP on stdio");
    warn_if_claude_missing(&config);

    let (stdin, stdout) = rmcp::transport::stdio();
    let (stdin, eof) = claude_worker::mcp::EofSignal::new(stdin);
    let server = ClaudeWorkerServer::new(service);
    let ended = async {
        match server.serve((stdin, stdout)).await {
            Ok(running) => {
                let waiting = running.waiting();
                tokio::pin!(waiting);
                tokio::select! {
                    _ = &mut waiting => {}
                    () = eof.notified() => {
                        let _ = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
                    }
                }
                Ok(())
            }
            Err(ServerInitializeError::ConnectionClosed(_)) => Ok(()),
            Err(e) => Err(anyhow::Error::from(e).context("MCP session failed")),
        }
    };
    let result = tokio::select! {
        r = ended => r,
        () = terminated() => Ok(()),
    };
    tracing::info!("claude-worker shutting down");
    shutdown.cancel();
    let _ = executor_task.await;
    result
}

async fn work(config: Arc<Config>, until_idle: bool) -> anyhow::Result<()> {
    let db = open(&config).await?;
    let executor = Executor::new(db.clone(), config.clone());
    let shutdown = CancellationToken::new();
    let executor_task = {
        let executor = executor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { executor.run(shutdown).await })
    };
    tracing::info!(owner = executor.owner(), "claude-worker working");
    warn_if_claude_missing(&config);
    if until_idle {
        let mut changes = executor.subscribe();
        loop {
            let busy = db.call(|s| s.has_unfinished_work()).await?;
            if !busy {
                break;
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = terminated() => break,
            }
        }
    } else {
        terminated().await;
    }
    shutdown.cancel();
    let _ = executor_task.await;
    Ok(())
}

/// Tasks would fail with `claude_not_found`: say so once at start, where a person looks.
fn warn_if_claude_missing(config: &Config) {
    if claude_worker::runner::find_executable(&config.claude_bin).is_none() {
        tracing::warn!(
            "cannot find the Claude Code CLI {:?}: tasks will fail until it is installed \
             (npm install -g @anthropic-ai/claude-code) or CLAUDE_WORKER_CLAUDE_BIN names it",
            config.claude_bin
        );
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
