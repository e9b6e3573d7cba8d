//! `claude-worker`: with no arguments, the MCP server on stdio (what `claude mcp add` runs).
//! `claude-worker work` runs the executor alone, headless. This file parses arguments, sets up
//! logging (stderr and the global log, never stdout), and wires the library together; the exit
//! code is decided here.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};

use claude_worker::cli::{Cli, Command, ServeArgs};
use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use tokio_util::sync::CancellationToken;

use claude_worker::config::Config;
use claude_worker::executor::Executor;
use claude_worker::mcp::ClaudeWorkerServer;
use claude_worker::service::Service;
use claude_worker::store::{Db, Store};

/// jemalloc, with the settings of `.cargo/config.toml`: one arena shared by all threads. glibc
/// gives each thread an arena of its own and keeps what it frees there, so a big batch parsed on
/// one thread and stored on another was held twice (a 100,000-task graph peaked at 78 MiB with
/// glibc, 56 MiB with this).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Needs no settings, no database and no log: it works whatever state they are in.
    if let Some(Command::Completions { shell }) = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "claude-worker", &mut std::io::stdout().lock());
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("claude-worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Before anything is written, not even the global log: a directory others can write to
    // could hold links that turn claude-worker's writes against this user's own files.
    if let Err(e) = claude_worker::files::check_dirs(&config) {
        eprintln!("claude-worker: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let _log_guard = claude_worker::logs::init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("claude-worker: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
            Command::Run(request) => claude_worker::terminal::run(config, *request).await,
            Command::Orchestrate(request) => claude_worker::terminal::orchestrate(config, request).await,
            // Printed above, before the settings were read.
            Command::Completions { .. } => Ok(std::process::ExitCode::SUCCESS),
            Command::Serve(ServeArgs { http: Some(addr) }) => serve_http(config, addr).await,
            Command::Serve(ServeArgs { http: None }) => serve(config).await,
            Command::Work { until_idle, detached } => work(config, until_idle, detached).await,
        }
    });
    // Attempts that ignore their stop signals must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            // The global log gets it; stderr gets it once, without the log prefix.
            tracing::error!(target: "claude_worker::exit", "{e:#}");
            eprintln!("claude-worker: {}", claude_worker::text::in_cli_words(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Db> {
    let (path, max_pages) = (config.db_path.clone(), config.max_db_pages);
    let store = tokio::task::spawn_blocking(move || {
        let store = Store::open_with(&path, max_pages)?;
        // A database made by an older version or another tool may be readable by others, and
        // SQLite gives its -wal and -shm files the same mode: it holds prompts and results.
        claude_worker::files::make_private(&path)?;
        anyhow::Ok(store)
    })
    .await??;
    Db::spawn(store).context("cannot start the database thread")
}

async fn serve(config: Arc<Config>) -> anyhow::Result<std::process::ExitCode> {
    let db = open(&config).await?;
    let shutdown = CancellationToken::new();
    // Started by a task's CLI (Claude Code loads the servers registered for the user in every
    // `claude -p`): it serves the tools, so that the task can queue follow-up work, but runs
    // nothing. An executor here would claim ready tasks only to give them up a moment later,
    // when the task's CLI exits.
    let executor = match &config.run_tag {
        None => Some(new_executor(&db, &config)?),
        Some(tag) => {
            tracing::info!(tag = ?tag, "started inside a task: serving the tools without an executor");
            None
        }
    };
    let (service, background) = match &executor {
        Some(executor) => {
            tracing::info!(owner = executor.owner(), db = %config.db_path.display(), "claude-worker serving MCP on stdio");
            warn_if_claude_missing(&config);
            (Service::new(db.clone(), config.clone(), Some(executor.clone())), run_executor(executor, &db, &shutdown))
        }
        None => {
            let changes = Arc::new(tokio::sync::watch::channel(0).0);
            let service = Service::with_changes(db.clone(), config.clone(), changes.clone());
            (service, follow_database(&db, &config.db_path, changes, &shutdown))
        }
    };
    if std::io::stdin().is_terminal() && executor.is_some() {
        // A person ran it by hand: an MCP client, not a person, is meant to talk to it.
        eprintln!(
            "claude-worker is an MCP server: it reads JSON-RPC messages on stdin, for an MCP client such as \
             Claude Code, which starts it itself once registered:\n  claude mcp add claude-worker -s user -- \
             claude-worker\nFrom a shell, queue work with `claude-worker run \"...\"` or `claude-worker \
             orchestrate FILE`, and look at it with `claude-worker-inspect`. Meanwhile this process runs queued \
             tasks ({}). Ctrl-D or Ctrl-C quits.",
            config.db_path.display()
        );
    }

    let (transport, session) = claude_worker::mcp::transport::stdio();
    let server = ClaudeWorkerServer::new(service);
    let ended = async {
        match server.serve(transport).await {
            Ok(running) => {
                let waiting = running.waiting();
                tokio::pin!(waiting);
                tokio::select! {
                    _ = &mut waiting => {}
                    // The client closed stdin or stdout: answers still being worked on are not
                    // waited for beyond a moment.
                    () = session.ended() => {
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
    let _ = background.await;
    // What is queued for stdout is written before the process exits.
    session.finish(Duration::from_secs(2)).await;
    let lost = db.lost_error().is_some();
    if let Some(executor) = &executor {
        executor.release_owner_lock();
        if config.detach_on_exit && !lost {
            detach_if_work_remains(&db, executor, &config.db_path).await;
        }
        // The last task's sound and notification go out before the process exits.
        executor.drain_feedback().await;
    }
    // A lost database was said when it was found; the exit code says it again.
    result.map(|()| if lost { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}

/// `claude-worker serve --http [ADDR]`: the executor, and the dashboard, the HTTP API and MCP
/// over HTTP, until SIGTERM, SIGHUP or SIGINT.
async fn serve_http(config: Arc<Config>, addr: String) -> anyhow::Result<std::process::ExitCode> {
    use claude_worker::http::{self, App, BodyLimits, access::Access, token};
    let addr = match addr.trim() {
        "" if config.http_host.contains(':') && !config.http_host.starts_with('[') => {
            format!("[{}]:{}", config.http_host, config.http_port)
        }
        "" => format!("{}:{}", config.http_host, config.http_port),
        given => given.to_owned(),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another server there? give --http HOST:PORT or set CLAUDE_WORKER_PORT)")
    })?;
    let local = listener.local_addr().context("the listening socket has no address")?;
    raise_open_files_limit();
    let loopback = local.ip().is_loopback();
    // After the database is open: its directory, where the token is kept, exists then.
    let db = open(&config).await?;
    let token = token::resolve(&config, loopback)
        .with_context(|| format!("cannot keep the HTTP token in {}", config.http_token_path().display()))?;
    let executor = new_executor(&db, &config)?;
    let shutdown = CancellationToken::new();
    let background = run_executor(&executor, &db, &shutdown);
    warn_if_claude_missing(&config);
    let service = Service::new(db.clone(), config.clone(), Some(executor.clone()));
    let mut names = config.http_hosts.clone();
    if let Ok(name) = nix::unistd::gethostname() {
        names.push(name.to_string_lossy().into_owned());
    }
    let access = Access::new(token.as_ref().map(|(t, _)| t.clone()), names);
    let limits = BodyLimits::from_config(&config);
    let stop_serving = CancellationToken::new();
    let mcp = claude_worker::mcp::http::service(service.clone(), stop_serving.child_token(), limits.batch);
    let router = http::router(App::new(service, access, stop_serving.clone()), mcp, limits);
    let server = tokio::spawn(http::serve(listener, router, stop_serving.clone()));
    // Caught from here on, before anyone is told that it serves.
    let signalled = terminated();
    tracing::info!(owner = executor.owner(), %local, db = %config.db_path.display(), "claude-worker serving HTTP");
    match &token {
        Some((token, token::Source::Generated(path))) => eprintln!(
            "claude-worker: requests need this token (Authorization: Bearer ...), kept in {}:\n{token}",
            path.display()
        ),
        Some((_, token::Source::Stored(path))) => {
            eprintln!("claude-worker: requests need the token kept in {}", path.display());
        }
        Some((_, token::Source::Setting)) => eprintln!("claude-worker: requests need CLAUDE_WORKER_HTTP_TOKEN"),
        None => {}
    }
    // Last: whoever started it knows, once this line is out, that it serves.
    eprintln!(
        "claude-worker: serving http://{local}/ (the dashboard; the API at /api/v1, MCP at /mcp) and running the tasks \
         queued in {}. Ctrl-C stops.",
        config.db_path.display()
    );
    signalled.await;
    tracing::info!("claude-worker shutting down");
    stop_serving.cancel();
    shutdown.cancel();
    let _ = server.await;
    let _ = background.await;
    executor.release_owner_lock();
    let lost = db.lost_error().is_some();
    if config.detach_on_exit && !lost {
        detach_if_work_remains(&db, &executor, &config.db_path).await;
    }
    executor.drain_feedback().await;
    Ok(if lost { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}

/// Every HTTP client holds a file descriptor (a dashboard holds one for its events): the soft
/// limit, often 1,024, is raised to the hard one, as servers do.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
    }
}

/// For a server without an executor: follows other processes' commits (see
/// [`claude_worker::watch::follow_commits`]) until `shutdown`, and says once if the database
/// is deleted or replaced (the server then answers every call with the error, as one with an
/// executor does).
fn follow_database(
    db: &Db,
    db_path: &std::path::Path,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let follow = claude_worker::watch::follow_commits(db.clone(), db_path, changes.clone(), shutdown.clone());
    let (db, shutdown) = (db.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = db.lost() => {
                if let Some(e) = db.lost_error() {
                    tracing::error!("{e}");
                }
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            () = shutdown.cancelled() => {}
        }
        let _ = follow.await;
    })
}

/// Runs the executor until `shutdown` — or until the database is found deleted or replaced:
/// then this process says so once (stderr and the global log), stops its running attempts at
/// once (their outcomes can be recorded nowhere, and a task of a restored backup must not run
/// twice), claims nothing more and gives up its owner lock, so that a process on the file now
/// at the path takes back what it holds there. A server goes on answering every tool call with
/// the error until its client disconnects: MCP clients do not restart a stdio server that
/// exits, and would show a dead server without a word of why.
fn run_executor(executor: &Executor, db: &Db, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let (executor, db, shutdown) = (executor.clone(), db.clone(), shutdown.clone());
    tokio::spawn(async move {
        let on_lost = async {
            db.lost().await;
            if let Some(e) = db.lost_error() {
                tracing::error!("{e}");
            }
            shutdown.cancel();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = executor.run(shutdown.clone()) => {}
            () = on_lost => {}
        }
        if db.lost_error().is_some() {
            executor.release_owner_lock();
            // Waiters (`wait`, subscriptions) look again, and meet the error.
            executor.wake();
        }
    })
}

fn new_executor(db: &Db, config: &Arc<Config>) -> anyhow::Result<Executor> {
    Executor::new(db.clone(), config.clone()).with_context(|| {
        format!(
            "cannot create this process's owner lock in {} (other processes use it to tell that this one is alive)",
            claude_worker::owners::owners_dir(&config.db_path).display()
        )
    })
}

/// Fire and forget: work queued through this server must not wait for the next editor session.
/// When work is left and no other executor is alive on the database (checked after giving up our
/// own lock, so that two servers exiting together cannot each leave it to the other), starts a
/// detached `claude-worker work --until-idle`.
async fn detach_if_work_remains(db: &Db, executor: &Executor, db_path: &std::path::Path) {
    let left = db.call(|s| s.has_unfinished_work()).await.unwrap_or(false);
    if !left || executor.others_alive() {
        return;
    }
    match claude_worker::runner::spawn_detached_worker(db_path) {
        Ok(pid) => tracing::info!(pid, "work is left and no other executor is alive: started a detached worker"),
        Err(e) => tracing::error!("work is left, but a detached worker could not be started: {e}"),
    }
}

async fn work(config: Arc<Config>, until_idle: bool, detached: bool) -> anyhow::Result<std::process::ExitCode> {
    // Registered once: a signal between two looks is not lost. A background worker is stopped
    // with SIGTERM (or SIGHUP) only: a Ctrl-C at the terminal that started it is not meant for it.
    let signalled = if detached {
        Box::pin(sigterm()) as std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    } else {
        Box::pin(terminated())
    };
    // A detached worker is one of possibly many started at once (a burst of `claude-worker run`,
    // each seeing no executor alive): before the database is opened, one takes the worker lock
    // and the others, or any started while another executor is alive, exit at once.
    let worker_lock = if detached {
        match claude_worker::owners::WorkerLock::try_acquire(&config.db_path) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                tracing::info!("another detached worker runs on this database: this one exits");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            Err(e) => {
                tracing::warn!("cannot take the detached worker's lock ({e}); working all the same");
                None
            }
        }
    } else {
        None
    };
    if detached && claude_worker::owners::any_alive(&config.db_path) {
        tracing::info!("another executor is alive on this database: this detached worker exits");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let db = open(&config).await?;
    let executor = new_executor(&db, &config)?;
    let shutdown = CancellationToken::new();
    let executor_task = run_executor(&executor, &db, &shutdown);
    tracing::info!(owner = executor.owner(), "claude-worker working");
    warn_if_claude_missing(&config);
    if std::io::stdin().is_terminal() {
        eprintln!(
            "claude-worker: running the tasks queued in {}, at most {} at once across every process, {}; \
             `claude-worker-inspect watch` shows them.",
            config.db_path.display(),
            config.max_concurrent,
            if until_idle { "until none is left" } else { "until Ctrl-C" }
        );
    }
    tokio::pin!(signalled);
    let mut idle = false;
    if until_idle {
        let mut changes = executor.subscribe();
        loop {
            let busy = db.call(|s| s.has_unfinished_work()).await?;
            if !busy {
                idle = true;
                break;
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = &mut signalled => break,
                () = db.lost() => break,
            }
        }
    } else {
        tokio::select! {
            () = &mut signalled => {}
            () = db.lost() => {}
        }
    }
    shutdown.cancel();
    let _ = executor_task.await;
    executor.release_owner_lock();
    // Given up with the owner lock, so that the worker this one may start next is not refused.
    drop(worker_lock);
    // Work queued after the last look found none, while this worker still held its lock, was
    // left to it by whoever queued it: hand it on.
    if idle {
        detach_if_work_remains(&db, &executor, &config.db_path).await;
    }
    executor.drain_feedback().await;
    // A worker has nobody to answer: it exits, the database's loss said when it was found.
    Ok(if db.lost_error().is_some() { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
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

/// Resolves on SIGTERM or SIGHUP; SIGINT is caught (from this call on) and ignored.
fn sigterm() -> impl Future<Output = ()> + Send {
    stop_signals(false)
}

/// Resolves on SIGTERM, SIGHUP or SIGINT, caught from this call on (not from the first poll).
fn terminated() -> impl Future<Output = ()> + Send {
    stop_signals(true)
}

fn stop_signals(on_interrupt: bool) -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    // SIGHUP (the terminal that started it closed) ends it as SIGTERM does: its tasks released,
    // the queue handed on. Left to its default, it would kill the process with nothing released.
    let listeners = (signal(SignalKind::terminate()), signal(SignalKind::hangup()), signal(SignalKind::interrupt()));
    async move {
        match listeners {
            (Ok(mut term), Ok(mut hangup), Ok(mut int)) => loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = hangup.recv() => {
                        tracing::info!("SIGHUP: stopping as for SIGTERM");
                        return;
                    }
                    _ = int.recv() => {
                        if on_interrupt {
                            return;
                        }
                        tracing::debug!("SIGINT ignored: a background worker stops on SIGTERM");
                    }
                }
            },
            _ => std::future::pending().await,
        }
    }
}
