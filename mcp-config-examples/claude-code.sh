#!/bin/sh
# Registers claude-worker with Claude Code for every project of this user (user scope).
# Needs `claude-worker` on PATH: `cargo install --locked --path .` puts it in ~/.cargo/bin.
set -e

claude mcp add claude-worker -s user -- claude-worker

# The same with settings for the server, one -e KEY=VALUE each, before the `--`
# (every variable is listed in README.md, "Configuration"). To switch to this form, first remove
# the registration above with: claude mcp remove claude-worker -s user
#
# claude mcp add claude-worker -s user \
#   -e CLAUDE_WORKER_MAX_CONCURRENT=2 \
#   -e CLAUDE_WORKER_DEFAULT_MODEL=opus \
#   -e CLAUDE_WORKER_TASK_TIMEOUT=7200 \
#   -e CLAUDE_WORKER_LOG_LEVEL=debug \
#   -- claude-worker
