//! The tools' JSON Schemas as a client receives them over `tools/list`: only formats JSON Schema
//! defines (Claude Code warns on every call about any other), no boolean subschemas (Claude Code
//! refuses the whole list over one), and unsigned integers still say they cannot be negative.

use serde_json::Value;

use crate::harness::Env;

const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Walks every subschema; collects the paths of bad formats, and of each integer whether it has
/// `minimum: 0`.
fn walk(schema: &Value, path: &str, bad: &mut Vec<String>, integers: &mut Vec<(String, bool)>) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::String(format)) = object.get("format")
                && !STANDARD_FORMATS.contains(&format.as_str())
            {
                bad.push(format!("{path}: format {format:?}"));
            }
            let integer = match object.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            if integer {
                integers.push((path.to_owned(), object.get("minimum") == Some(&Value::from(0))));
            }
            for (key, value) in object {
                // Values, not subschemas.
                if matches!(key.as_str(), "default" | "const" | "enum" | "examples") {
                    continue;
                }
                // Claude Code refuses the whole tool list over a boolean schema where it expects
                // an object (a field of any JSON is `{}`, not `true`).
                let members: Vec<(String, &Value)> = match (key.as_str(), value) {
                    ("properties" | "$defs", Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
                    ("anyOf" | "oneOf" | "allOf", Value::Array(list)) => {
                        list.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect()
                    }
                    ("items" | "not", value) => vec![(String::new(), value)],
                    _ => Vec::new(),
                };
                for (name, member) in members {
                    if member.is_boolean() {
                        bad.push(format!("{path}/{key}/{name}: a boolean schema"));
                    }
                }
                walk(value, &format!("{path}/{key}"), bad, integers);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}/{i}"), bad, integers);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn tool_schemas_use_only_standard_formats_and_keep_unsigned_minimums() {
    let env = Env::new();
    let client = env.server().await;
    let tools = client.service.list_all_tools().await.expect("tools/list");
    assert!(tools.len() >= 9, "{} tools", tools.len());
    let mut bad = Vec::new();
    let mut integers = Vec::new();
    for tool in &tools {
        walk(
            &Value::Object((*tool.input_schema).clone()),
            &format!("{}/inputSchema", tool.name),
            &mut bad,
            &mut integers,
        );
        let output = tool.output_schema.as_ref().unwrap_or_else(|| panic!("{} has an output schema", tool.name));
        walk(&Value::Object((**output).clone()), &format!("{}/outputSchema", tool.name), &mut bad, &mut integers);
    }
    assert!(bad.is_empty(), "non-standard formats or boolean schemas:\n{}", bad.join("\n"));
    // Fields that are unsigned in claude-worker (inputs and outputs) still say so.
    for name in ["attempt", "max_attempts", "limit", "tail_lines", "timeout_seconds", "input_tokens", "total_tasks"] {
        let suffix = format!("/properties/{name}");
        let found: Vec<&(String, bool)> = integers.iter().filter(|(path, _)| path.ends_with(&suffix)).collect();
        assert!(!found.is_empty(), "no integer {name} in any schema");
        for (path, non_negative) in found {
            assert!(non_negative, "{path} lost its minimum: 0");
        }
    }
    client.stop().await;
}
