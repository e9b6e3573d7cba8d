-- The first schema: orchestrations, tasks, their dependency edges and the append-only history.
-- Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE orchestrations (
    orchestration_id INTEGER PRIMARY KEY,
    name             TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    ended_at         INTEGER,
    -- ORCHESTRATION_TIMEOUT when it was created, and the deadline it sets once the
    -- orchestration starts running: after it, unfinished tasks are cancelled.
    timeout_ms       INTEGER NOT NULL,
    deadline_at      INTEGER,
    -- Set when the orchestration itself was cancelled (by a caller or its deadline).
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    -- Set when a task joined this orchestration to another: the survivor.
    merged_into      INTEGER REFERENCES orchestrations (orchestration_id)
);
CREATE UNIQUE INDEX orchestrations_name ON orchestrations (name) WHERE name IS NOT NULL AND merged_into IS NULL;
CREATE INDEX orchestrations_live ON orchestrations (status, deadline_at) WHERE merged_into IS NULL AND cancel_requested = 0;

CREATE TABLE tasks (
    task_id              INTEGER PRIMARY KEY,
    orchestration_id     INTEGER NOT NULL REFERENCES orchestrations (orchestration_id),
    task_identifier      TEXT NOT NULL,
    execution_prompt     TEXT NOT NULL,
    working_directory    TEXT NOT NULL,
    model                TEXT NOT NULL,
    system_prompt        TEXT,
    append_system_prompt TEXT,
    permission_mode      TEXT NOT NULL,
    -- Tool patterns, one per line.
    allowed_tools        TEXT NOT NULL DEFAULT '',
    disallowed_tools     TEXT NOT NULL DEFAULT '',
    max_turns            INTEGER,
    max_budget_usd       REAL,
    timeout_seconds      INTEGER NOT NULL,
    max_attempts         INTEGER NOT NULL,
    priority             INTEGER NOT NULL DEFAULT 0,
    wait_after_dependencies REAL NOT NULL DEFAULT 0,

    status               TEXT NOT NULL
                         CHECK (status IN ('waiting', 'pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    attempt              INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    ended_at             INTEGER,
    -- While pending: not before this time (retry backoff, wait_after_dependencies).
    ready_at             INTEGER,
    cancel_requested     INTEGER NOT NULL DEFAULT 0,
    -- Why a running task was asked to stop: the error its owner records when it has stopped it.
    cancel_kind          TEXT,
    cancel_reason        TEXT,

    -- The claim: who runs the current attempt, until when, and the fence that orders claims.
    owner                TEXT,
    lease_expires_at     INTEGER,
    fence                INTEGER NOT NULL DEFAULT 0,
    pid                  INTEGER,

    -- What the runs recorded.
    result               TEXT,
    error_kind           TEXT,
    error_message        TEXT,
    session_id           TEXT,
    cost_usd             REAL NOT NULL DEFAULT 0,
    input_tokens         INTEGER NOT NULL DEFAULT 0,
    output_tokens        INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
    num_turns            INTEGER,
    duration_ms          INTEGER,
    permission_denials   TEXT,
    last_action          TEXT
);
CREATE UNIQUE INDEX tasks_identifier_in_orchestration ON tasks (orchestration_id, task_identifier);
CREATE INDEX tasks_identifier ON tasks (task_identifier, task_id);
CREATE INDEX tasks_orchestration_status ON tasks (orchestration_id, status);
CREATE INDEX tasks_status ON tasks (status, task_id);
-- Serves the claim: the best ready task first.
CREATE INDEX tasks_claim ON tasks (priority DESC, task_id) WHERE status = 'pending';

CREATE TABLE task_dependencies (
    task_id    INTEGER NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    depends_on INTEGER NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
-- Serves the promotion of dependents when a task completes.
CREATE INDEX task_dependents ON task_dependencies (depends_on, task_id);

CREATE TABLE task_events (
    event_id INTEGER PRIMARY KEY,
    task_id  INTEGER NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    fence    INTEGER,
    owner    TEXT,
    detail   TEXT
);
CREATE INDEX task_events_task ON task_events (task_id, event_id);
