//! The `claude-worker` binary's arguments: serve MCP on stdio (the default) or HTTP, run the executor
//! alone (`work`), queue work from a terminal (`run`, `orchestrate`), print completions.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "claude-worker",
    version,
    about = "Run Claude Code tasks in the background as a dependency graph (MCP server on stdio)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve MCP on stdio (the default), or with --http the dashboard, the HTTP API and MCP over HTTP.
    Serve(ServeArgs),
    /// Run queued tasks without serving MCP, until stopped (or until idle).
    Work {
        /// Exit once no task is running, ready or waiting.
        #[arg(long)]
        until_idle: bool,
        /// Started in the background by a server or a terminal command (internal: marks it in
        /// process listings).
        #[arg(long, hide = true)]
        detached: bool,
    },
    /// Queue one task and return at once, printing its id.
    ///
    /// Text piped to stdin is appended to the prompt: git diff | claude-worker run "Review these
    /// changes". When no claude-worker is running, a background worker starts.
    Run(Box<crate::terminal::RunRequest>),
    /// Queue a workflow file, checked whole before anything is stored.
    ///
    /// The file is {"name": ..., "tasks": [...]}, as create_orchestration takes (identifier,
    /// execution_prompt, depends_on, initial_delay, model, working_directory, ...). Relative
    /// directories, and tasks that name none, are taken from the file's directory. Queuing a
    /// file again after its latest run finished queues a new run, numbered (NAME-2, ...).
    Orchestrate(crate::terminal::OrchestrateRequest),
    /// Print a shell completion script (bash, zsh or fish; README says where to put it).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// Serve over HTTP instead of stdio, at ADDR (default $CLAUDE_WORKER_HOST:$CLAUDE_WORKER_PORT,
    /// 127.0.0.1:8000): the dashboard at /, the API at /api/v1, MCP at /mcp. Any address but
    /// loopback needs a token (CLAUDE_WORKER_HTTP_TOKEN, or one generated and printed once).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub http: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command, of both binaries, says what it is in `--help`.
    #[test]
    fn every_argument_has_a_help_line() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&super::Cli::command(), "claude-worker", &mut missing);
        check(&crate::inspect::Cli::command(), "claude-worker-inspect", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
