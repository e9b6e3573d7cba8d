//! One integration test binary: the real `claude-worker` and `claude-worker-inspect` binaries,
//! a fake `claude` shaped like the real CLI's output, and real SQLite, processes and signals.

mod bad_input;
mod durability;
mod environment;
mod execution;
mod feedback;
mod harness;
mod inspect;
mod inspect_more;
mod limits;
mod live;
mod protocol;
mod resources;
mod terminal;
mod tools;
