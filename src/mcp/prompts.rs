//! MCP prompts: `plan_orchestration`, which turns a goal (and optionally the directory to work in)
//! into messages that lead a model to one well-formed `create_orchestration` call.

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};

pub const PLAN_ORCHESTRATION: &str = "plan_orchestration";

/// The prompts this server offers.
pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(
            PLAN_ORCHESTRATION,
            Some("Plan a goal as a graph of background Claude Code tasks and queue it with one create_orchestration call"),
            Some(vec![
                PromptArgument::new("goal")
                    .with_title("Goal")
                    .with_description("What the work as a whole should achieve")
                    .with_required(true),
                PromptArgument::new("working_directory")
                    .with_title("Working directory")
                    .with_description("Absolute path of the project the tasks work in (default: the server's directory)")
                    .with_required(false),
            ]),
        )
        .with_title("Plan an orchestration"),
    ]
}

/// The messages of a prompt; an unknown name or a missing required argument is `-32602`, as
/// the MCP specification asks.
pub fn get(name: &str, arguments: Option<&JsonObject>) -> Result<GetPromptResult, ErrorData> {
    if name != PLAN_ORCHESTRATION {
        return Err(ErrorData::invalid_params(
            format!("Invalid prompt name {name:?}: this server offers {PLAN_ORCHESTRATION}"),
            None,
        ));
    }
    let argument = |key: &str| -> Result<Option<String>, ErrorData> {
        match arguments.and_then(|a| a.get(key)) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => {
                Err(ErrorData::invalid_params(format!("argument {key} must be a string, got {other}"), None))
            }
        }
    };
    let goal = argument("goal")?.ok_or_else(|| {
        ErrorData::invalid_params(
            "Missing required argument goal: say what the work as a whole should achieve".to_owned(),
            None,
        )
    })?;
    let directory = argument("working_directory")?;
    let mut result =
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, plan_text(&goal, directory.as_deref()))]);
    result.description = Some(format!("Plan \"{}\" as a create_orchestration call", first_line(&goal, 80)));
    Ok(result)
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

fn plan_text(goal: &str, directory: Option<&str>) -> String {
    let place = match directory {
        Some(dir) => format!(
            "Every task works in {dir}: give \"working_directory\": {} on each task.",
            serde_json::Value::String(dir.to_owned())
        ),
        None => "Tasks run in the server's directory unless a task gives \"working_directory\" (an absolute path)."
            .to_owned(),
    };
    format!(
        r#"Plan the following goal as background Claude Code tasks and queue them with ONE call of the claude-worker tool create_orchestration.

Goal:
{goal}

{place}

How to plan:
1. Split the goal into a few tasks (usually 2 to 8), each one a piece of work a single Claude Code session can finish and check on its own.
2. Give each task an "identifier": short, unique in the orchestration, letters, digits, '_', '-' and '.' only, not all digits (for example "schema", "api_users", "tests").
3. Write each "execution_prompt" to be self-contained. The background Claude does not see this conversation or the other tasks' prompts: name the files, the conventions, what "done" means and how to verify it (the commands to build and test). When a task builds on another's work, say what it will find (files, functions) rather than "the previous task".
4. Order with "depends_on": a task lists the identifiers of the tasks that must complete first. A task starts only once every task it depends on completed; if one fails, its dependents are skipped. There must be no cycles.
5. Let independent work run in parallel: tasks that do not depend on each other run at the same time, so do not chain tasks that could run side by side, and do not let two parallel tasks edit the same files.
6. Optional per task: "model" (sonnet, opus, haiku), "permission_mode" (acceptEdits lets a task edit files), "allowed_tools", "max_turns", "timeout_seconds", "priority", "result_schema" (a JSON Schema: the task answers with JSON its dependents read). A task is given the results of the tasks it depends on at the end of its prompt.
7. Give the orchestration a short "name".

Example of the arguments of create_orchestration (a schema, then two parallel pieces, then tests):
{{
  "name": "user-accounts",
  "tasks": [
    {{"identifier": "schema", "execution_prompt": "In this repository, add a users table migration under migrations/ with id, email (unique) and created_at. Run the migration tests with `cargo test migrations` and make them pass.", "permission_mode": "acceptEdits"}},
    {{"identifier": "api", "depends_on": ["schema"], "execution_prompt": "The users table exists (see migrations/). Add POST /users and GET /users/{{id}} handlers in src/api/users.rs, following the style of src/api/health.rs. Run `cargo build`.", "permission_mode": "acceptEdits"}},
    {{"identifier": "docs", "depends_on": ["schema"], "execution_prompt": "Document the users table (columns and constraints, from migrations/) in docs/data.md. Change no code.", "permission_mode": "acceptEdits"}},
    {{"identifier": "tests", "depends_on": ["api"], "execution_prompt": "Add integration tests for POST /users and GET /users/{{id}} (src/api/users.rs) in tests/users.rs, including a duplicate email. Run `cargo test` and make it pass.", "permission_mode": "acceptEdits"}}
  ]
}}

Then call create_orchestration once with the whole plan (it checks every task before storing any), tell me the orchestration id it returns, and how to follow it: get_status, wait, or @-mentioning claude-worker://orchestrations/<id>."#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(result: &GetPromptResult) -> String {
        serde_json::to_value(&result.messages[0]).expect("json")["content"]["text"].as_str().expect("text").to_owned()
    }

    #[test]
    fn the_goal_and_directory_are_in_the_messages() {
        let args = json!({"goal": "Add user accounts", "working_directory": "/srv/app"});
        let result = get(PLAN_ORCHESTRATION, args.as_object()).expect("prompt");
        let text = text(&result);
        assert!(text.contains("Add user accounts"), "{text}");
        assert!(text.contains(r#""working_directory": "/srv/app""#), "{text}");
        assert!(text.contains("depends_on") && text.contains("self-contained"));
    }

    #[test]
    fn the_example_is_valid_json() {
        let result = get(PLAN_ORCHESTRATION, json!({"goal": "x"}).as_object()).expect("prompt");
        let text = text(&result);
        let start = text.find("\n{\n").expect("example start") + 1;
        let end = text.find("\n}\n").expect("example end") + 2;
        let example: serde_json::Value = serde_json::from_str(&text[start..end]).expect("example is JSON");
        assert_eq!(example["tasks"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn a_missing_goal_or_unknown_prompt_is_invalid_params() {
        for args in [None, Some(json!({})), Some(json!({"goal": "  "})), Some(json!({"goal": 5}))] {
            let object = args.as_ref().and_then(|a| a.as_object());
            let err = get(PLAN_ORCHESTRATION, object).expect_err("no goal");
            assert_eq!(err.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        }
        let err = get("nope", None).expect_err("unknown");
        assert_eq!(err.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    }
}
