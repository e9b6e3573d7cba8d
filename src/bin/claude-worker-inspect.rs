//! `claude-worker-inspect`: see [`claude_worker::inspect`].

fn main() -> std::process::ExitCode {
    claude_worker::inspect::main()
}
