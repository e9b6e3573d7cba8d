//! Structured results: a task's `result_schema` (a JSON Schema) checked when the task is created,
//! and the structured result an attempt gave checked against it when the attempt succeeds. Pure:
//! no IO. The schema never fetches anything (the `jsonschema` crate is built without its HTTP and
//! file resolvers, so a remote `$ref` makes the schema invalid rather than a request).

use serde_json::Value;

/// The longest schema accepted, as compact JSON: it goes to the CLI as one argument, and the
/// kernel refuses a single argument over 128 KiB.
pub const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// How many validation errors a failure names.
const ERRORS_NAMED: usize = 3;
/// The longest description of one validation error (it may quote the value at fault).
const ERROR_CHARS: usize = 300;

/// Checks a `result_schema` a caller gave: a JSON object that is a valid JSON Schema (for the
/// draft its `$schema` names, 2020-12 by default), at most [`MAX_SCHEMA_BYTES`] as compact JSON.
/// The error is a sentence that names the field and what to fix.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() {
        return Err(format!(
            "result_schema must be a JSON Schema object such as {{\"type\": \"object\", \"properties\": {{...}}}}, \
             not {}",
            kind_of(schema)
        ));
    }
    let size = schema.to_string().len();
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "result_schema is {size} bytes as compact JSON, over the limit of {MAX_SCHEMA_BYTES}: make it smaller"
        ));
    }
    jsonschema::validator_for(schema).map(|_| ()).map_err(|e| {
        // The schema was checked as an instance of its meta-schema: the place at fault in it.
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { String::new() } else { format!(" at {at}") };
        format!("result_schema is not a valid JSON Schema{at}: {}", shorten(&e.to_string()))
    })
}

/// Checks an attempt's structured result against the task's schema: `Ok` when it matches; else
/// the sentence of the `structured_result_invalid` failure, naming the first few errors.
pub fn check_result(schema: &Value, structured: Option<&Value>) -> Result<(), String> {
    let Some(value) = structured else {
        return Err("the CLI reported no structured result (structured_output), though the task has a \
                    result_schema: the model did not answer through it"
            .to_owned());
    };
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        format!("the task's result_schema cannot be used ({}); recreate the task", shorten(&e.to_string()))
    })?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "at the top".to_owned() } else { format!("at {at}") };
            format!("{at}: {}", shorten(&e.to_string()))
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let more = match errors.len().saturating_sub(ERRORS_NAMED) {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Err(format!(
        "the structured result does not match the task's result_schema: {}{more}",
        errors.iter().take(ERRORS_NAMED).cloned().collect::<Vec<_>>().join("; ")
    ))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= ERROR_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(ERROR_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer_schema() -> Value {
        json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]})
    }

    #[test]
    fn a_schema_must_be_a_valid_json_schema_object() {
        assert_eq!(check_schema(&answer_schema()), Ok(()));
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array"});
        assert_eq!(check_schema(&draft7), Ok(()));
        for not_object in [json!(true), json!("object"), json!([1]), json!(null)] {
            let e = check_schema(&not_object).expect_err("refused");
            assert!(e.starts_with("result_schema must be a JSON Schema object"), "{e}");
        }
        let e = check_schema(&json!({"type": "invalid_type"})).expect_err("refused");
        assert!(e.starts_with("result_schema is not a valid JSON Schema at /type"), "{e}");
        let e = check_schema(&json!({"properties": {"a": {"minimum": "five"}}})).expect_err("refused");
        assert!(e.contains("/properties/a/minimum"), "{e}");
        // Nothing is fetched: a remote reference cannot be resolved.
        let e = check_schema(&json!({"$ref": "https://example.com/schema.json"})).expect_err("refused");
        assert!(e.starts_with("result_schema is not a valid JSON Schema"), "{e}");
        let huge = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(check_schema(&huge).expect_err("refused").contains("over the limit"));
    }

    #[test]
    fn a_result_is_checked_against_its_schema() {
        let schema = answer_schema();
        assert_eq!(check_result(&schema, Some(&json!({"answer": 42}))), Ok(()));
        let e = check_result(&schema, Some(&json!({"answer": "forty-two"}))).expect_err("invalid");
        assert!(e.starts_with("the structured result does not match the task's result_schema: at /answer: "), "{e}");
        assert!(e.contains("\"forty-two\" is not of type \"integer\""), "{e}");
        let e = check_result(&schema, Some(&json!({}))).expect_err("invalid");
        assert!(e.contains("at the top: \"answer\" is a required property"), "{e}");
        let e = check_result(&schema, None).expect_err("missing");
        assert!(e.contains("no structured result"), "{e}");
    }

    #[test]
    fn a_failure_names_the_first_few_errors_briefly() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"},
            "d": {"type": "integer"}, "e": {"type": "integer"}}});
        let value = json!({"a": "x", "b": "x", "c": "x", "d": "x", "e": "y".repeat(10_000)});
        let e = check_result(&schema, Some(&value)).expect_err("invalid");
        assert_eq!(e.matches(" is not of type ").count(), ERRORS_NAMED, "{e}");
        assert!(e.ends_with("(and 2 more)"), "{e}");
        assert!(e.len() < 2000, "{}", e.len());
    }
}
