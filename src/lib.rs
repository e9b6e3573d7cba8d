//! claude-worker: an MCP stdio server that lets Claude hand work to background Claude Code
//! processes, as a dependency graph stored durably in SQLite.
//!
//! Codemap: [`cli`] holds the `claude-worker` binary's arguments; [`config`] reads the environment once; [`model`] holds the domain types; [`graph`] is
//! the pure dependency logic; [`store`] is the only module with SQL; [`runner`] is the only
//! module that spawns processes (the `claude` CLI) and reads their stream-json; [`executor`]
//! claims ready tasks and drives runs, waking on events; [`service`] offers the application's
//! verbs to both edges; [`api`] offers them as JSON shapes with typed errors to the MCP and HTTP edges; [`mcp`] is the only module that knows MCP and [`http`] the only one that knows HTTP (the dashboard, `/api/v1`, MCP mounted at `/mcp`); [`layout`] and [`drawing`] lay out and draw an orchestration's graph; [`inspect`] is the side CLI;
//! [`logs`] writes the global and per-task log files, and [`files`] opens every file claude-worker
//! writes (private, never through a link) and refuses directories others could plant files in; [`watch`] notices
//! other processes' writes to the shared database; [`owners`] tells which executors on the
//! database are alive; [`crash`] holds the crash points of the durability tests; [`terminal`]
//! is `claude-worker run` and `orchestrate`, and [`live`] the live view they share with the
//! inspect CLI's `watch`; [`tree`] lays out an orchestration's dependency tree for that view
//! and the inspect CLI; [`feedback`] plays sounds and shows desktop notifications for what the
//! executor did; [`text`] words counts for people; [`project`] finds the project (git work tree)
//! a task belongs to, which scopes bare identifiers; [`budget`] holds the pure rules of
//! orchestration budgets (when one is spent, what cap an attempt gets, their sentences);
//! [`usage_limit`] decides what an account's usage limit does to the queue (recognising it, until
//! when work waits, the words for it); [`git`] is the only module that runs git (through the
//! runner's process rules): task worktrees, merges along the graph, the user's checkout;
//! [`isolation`] decides where an isolated task runs and what it starts from; [`verify`] holds
//! the pure rules of checked completion (who may set a `verify` command, what a check's result
//! means, the fix prompt); [`prompt`] composes the prompt an attempt is given (merge conflicts to
//! resolve first, the task's own prompt, its dependencies' results), and [`result_schema`]
//! checks a task's JSON Schema and the structured result given against it.

pub mod api;
pub mod budget;
pub mod cli;
pub mod config;
pub mod crash;
pub mod drawing;
pub mod executor;
pub mod feedback;
pub mod files;
pub mod git;
pub mod graph;
pub mod http;
pub mod inspect;
pub mod isolation;
pub mod layout;
pub mod live;
pub mod logs;
pub mod mcp;
pub mod model;
pub mod owners;
pub mod project;
pub mod prompt;
pub mod result_schema;
pub mod runner;
pub mod service;
pub mod store;
pub mod terminal;
pub mod text;
pub mod time;
pub mod tree;
pub mod usage_limit;
pub mod verify;
pub mod watch;
