//! One integration test binary: the real `claude-worker` and `claude-worker-inspect` binaries,
//! a fake `claude` shaped like the real CLI's output, and real SQLite, processes and signals.

mod environment;
mod execution;
mod harness;
mod inspect;
mod limits;
mod protocol;
mod tools;
