-- An orchestration's counters kept as its tasks change, instead of counted from all its tasks on
-- every change: counting made each claim and each finish cost as much as the orchestration is
-- large, and a graph of n tasks cost n². Triggers keep them exact whatever statement changes a
-- task (create, claim, finish, cancel, retry, a merge of orchestrations, prune).

-- How many tasks of an orchestration are in each state.
CREATE TABLE orchestration_counts (
    orchestration_id INTEGER NOT NULL,
    status           TEXT NOT NULL,
    n                INTEGER NOT NULL,
    PRIMARY KEY (orchestration_id, status)
) WITHOUT ROWID;

-- What its tasks have cost so far, summed over their attempts.
ALTER TABLE orchestrations ADD COLUMN spent_usd REAL NOT NULL DEFAULT 0;

INSERT INTO orchestration_counts (orchestration_id, status, n)
    SELECT orchestration_id, status, count(*) FROM tasks GROUP BY orchestration_id, status;
UPDATE orchestrations SET spent_usd = (
    SELECT total(cost_usd) FROM tasks WHERE tasks.orchestration_id = orchestrations.orchestration_id);

CREATE TRIGGER tasks_counted_in AFTER INSERT ON tasks BEGIN
    INSERT INTO orchestration_counts (orchestration_id, status, n) VALUES (new.orchestration_id, new.status, 1)
        ON CONFLICT (orchestration_id, status) DO UPDATE SET n = n + 1;
    UPDATE orchestrations SET spent_usd = spent_usd + new.cost_usd
        WHERE orchestration_id = new.orchestration_id AND new.cost_usd <> 0;
END;

CREATE TRIGGER tasks_counted_out AFTER DELETE ON tasks BEGIN
    UPDATE orchestration_counts SET n = n - 1
        WHERE orchestration_id = old.orchestration_id AND status = old.status;
    UPDATE orchestrations SET spent_usd = spent_usd - old.cost_usd
        WHERE orchestration_id = old.orchestration_id AND old.cost_usd <> 0;
END;

CREATE TRIGGER tasks_counted_moved AFTER UPDATE OF status, orchestration_id ON tasks
    WHEN old.status IS NOT new.status OR old.orchestration_id IS NOT new.orchestration_id
BEGIN
    UPDATE orchestration_counts SET n = n - 1
        WHERE orchestration_id = old.orchestration_id AND status = old.status;
    INSERT INTO orchestration_counts (orchestration_id, status, n) VALUES (new.orchestration_id, new.status, 1)
        ON CONFLICT (orchestration_id, status) DO UPDATE SET n = n + 1;
END;

-- Cost only grows, by an attempt's cost: added as the difference, so that the sum stays the sum
-- of what was added. A task that moves to another orchestration (a merge) takes its cost along.
CREATE TRIGGER tasks_spent AFTER UPDATE OF cost_usd ON tasks
    WHEN old.cost_usd IS NOT new.cost_usd AND old.orchestration_id = new.orchestration_id
BEGIN
    UPDATE orchestrations SET spent_usd = spent_usd + (new.cost_usd - old.cost_usd)
        WHERE orchestration_id = new.orchestration_id;
END;

CREATE TRIGGER tasks_spent_moved AFTER UPDATE OF orchestration_id ON tasks
    WHEN old.orchestration_id IS NOT new.orchestration_id
BEGIN
    UPDATE orchestrations SET spent_usd = spent_usd - old.cost_usd WHERE orchestration_id = old.orchestration_id;
    UPDATE orchestrations SET spent_usd = spent_usd + new.cost_usd WHERE orchestration_id = new.orchestration_id;
END;

CREATE TRIGGER orchestrations_uncounted AFTER DELETE ON orchestrations BEGIN
    DELETE FROM orchestration_counts WHERE orchestration_id = old.orchestration_id;
END;
