//! One integration test binary: the real `claude-worker` and `claude-worker-inspect` binaries,
//! a fake `claude` shaped like the real CLI's output, and real SQLite, processes and signals.

mod bad_input;
mod durability;
mod execution;
mod feedback;
mod harness;
mod inspect;
mod limits;
mod protocol;
mod tools;
