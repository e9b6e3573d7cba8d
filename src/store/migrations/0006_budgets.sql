-- Orchestration budgets: the most its tasks may spend together, in dollars (NULL: no budget),
-- and the --max-budget-usd each attempt was started with (the task's own max_budget_usd lowered
-- to what was left of the budget), so that its outcome can tell whether the budget stopped it.
ALTER TABLE orchestrations ADD COLUMN budget_usd REAL;
ALTER TABLE tasks ADD COLUMN attempt_budget_usd REAL;
