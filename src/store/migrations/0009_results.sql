-- Results that reach the dependents (issue 11): whether a task's prompt is given its
-- dependencies' results, the JSON Schema its result must match, and the structured result it
-- gave (validated against that schema).

-- 1: the attempt's prompt ends with a section of the dependencies' results; 0: as written.
ALTER TABLE tasks ADD COLUMN include_dependency_results INTEGER NOT NULL DEFAULT 1;
-- The task's `result_schema`, as compact JSON text; passed to the CLI as `--json-schema`.
ALTER TABLE tasks ADD COLUMN result_schema TEXT;
-- The result event's `structured_output` of the attempt that completed, as compact JSON text.
ALTER TABLE tasks ADD COLUMN structured_result TEXT;
