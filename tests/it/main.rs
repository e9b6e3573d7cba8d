//! One integration test binary: the real `claude-worker` and `claude-worker-inspect` binaries,
//! a fake `claude` shaped like the real CLI's output, and real SQLite, processes and signals.

mod api_retries;
mod bad_input;
mod budgets;
mod cli;
mod costs;
mod dashboard;
mod durability;
mod durability_gaps;
mod environment;
mod execution;
mod feedback;
mod harness;
mod hostile_files;
mod http;
mod inspect;
mod inspect_more;
mod isolation;
mod limits;
mod live;
mod logs;
mod nested;
mod projects;
mod protocol;
mod replaced_db;
mod resources;
mod results;
mod runner_faults;
mod scaling;
mod schemas;
mod terminal;
mod tools;
mod usage_limits;
mod verify;
