-- The account's usage limits (a subscription's 5-hour and weekly windows): one row, shared by
-- every process on the database, since the limit is the account's, not a task's.
CREATE TABLE usage_limit (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- The last refusal: its window (`five_hour`, ...), the reset the CLI gave (ms, as it said
    -- it), and when it was seen.
    kind TEXT,
    resets_at INTEGER,
    seen_at INTEGER,
    -- While in the future, no process claims any task (the claim statement checks it). Set back
    -- to NULL by the one executor that ends the pause once it has passed, which announces it.
    paused_until INTEGER,
    -- When the pause on began (kept when a refusal lengthens it): orchestration deadlines are
    -- moved on by as long as it lasted, so that a pause does not count against them.
    paused_since INTEGER,
    -- The last `allowed_warning`: the limit is near.
    warning_kind TEXT,
    warning_utilization REAL,
    warning_threshold REAL,
    warning_resets_at INTEGER,
    warning_seen_at INTEGER
);
INSERT INTO usage_limit (id) VALUES (1);
