//! The tools' JSON Schemas, as clients read them. schemars marks numbers with formats of its own
//! (`uint32`, `int64`, `double`, ...) that are not JSON Schema formats: Claude Code's validator
//! warns about each of them on every tool call (about 40 lines of stderr). [`standard_formats`]
//! is applied once to every tool's input and output schema when the server is built: it drops a
//! format that is not standard and keeps what it meant for unsigned integers as `minimum: 0`.
//! It also writes the boolean schemas schemars gives a field of any JSON (`true`) as the schemas
//! they mean (`{}`): Claude Code (2.1.197) refuses a tool list whose schema has a boolean where
//! it expects an object ("tools fetch failed: Invalid input at
//! tools.3.outputSchema.properties.permission_denials"), and then offers none of the tools.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;
use schemars::Schema;
use schemars::transform::{RecursiveTransform, Transform};
use serde_json::Value;
use std::sync::Arc;

/// The formats JSON Schema (2020-12) defines; clients may validate these.
pub const STANDARD_FORMATS: &[&str] = &[
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

/// Rewrites every tool's input and output schema with [`standard_formats`].
pub fn standardize_router<S>(router: &mut ToolRouter<S>) {
    for route in router.map.values_mut() {
        route.attr.input_schema = Arc::new(standard_formats(&route.attr.input_schema));
        if let Some(output) = &route.attr.output_schema {
            route.attr.output_schema = Some(Arc::new(standard_formats(output)));
        }
    }
}

/// `schema` with every non-standard `format` removed, in every subschema (properties, items,
/// `$defs`, `anyOf`, ...); an unsigned one (`uint8` to `uint64`, `uint`) leaves `minimum: 0`.
pub fn standard_formats(schema: &JsonObject) -> JsonObject {
    let mut schema = Schema::from(schema.clone());
    RecursiveTransform(|subschema: &mut Schema| {
        match subschema.as_bool() {
            Some(true) => *subschema = Schema::from(JsonObject::new()),
            Some(false) => *subschema = Schema::from(object_of(serde_json::json!({ "not": {} }))),
            None => {}
        }
        let Some(format) = subschema.get("format").and_then(Value::as_str) else { return };
        if STANDARD_FORMATS.contains(&format) {
            return;
        }
        let unsigned = format.starts_with("uint");
        subschema.remove("format");
        if unsigned && subschema.get("minimum").is_none() {
            subschema.insert("minimum".to_owned(), Value::from(0));
        }
    })
    .transform(&mut schema);
    match schema.to_value() {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

fn object_of(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> JsonObject {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn numeric_formats_go_and_unsigned_ones_keep_a_minimum() {
        let schema = object(json!({
            "type": "object",
            "properties": {
                "attempt": { "type": "integer", "format": "uint32", "minimum": 0 },
                "bare": { "type": "integer", "format": "uint64" },
                "id": { "type": ["integer", "null"], "format": "int64" },
                "cost": { "type": "number", "format": "double" },
                "list": { "type": "array", "items": { "type": "integer", "format": "uint8", "minimum": 0, "maximum": 255 } },
                "at": { "type": "string", "format": "date-time" },
                // A property that happens to be called `format` is not a keyword.
                "format": { "type": "string" }
            },
            "$defs": { "Inner": { "anyOf": [{ "type": "number", "format": "float" }, { "type": "null" }] } }
        }));
        let fixed = Value::Object(standard_formats(&schema));
        assert_eq!(fixed["properties"]["attempt"], json!({ "type": "integer", "minimum": 0 }));
        assert_eq!(fixed["properties"]["bare"], json!({ "type": "integer", "minimum": 0 }));
        assert_eq!(fixed["properties"]["id"], json!({ "type": ["integer", "null"] }));
        assert_eq!(fixed["properties"]["cost"], json!({ "type": "number" }));
        assert_eq!(fixed["properties"]["list"]["items"], json!({ "type": "integer", "minimum": 0, "maximum": 255 }));
        assert_eq!(fixed["properties"]["at"], json!({ "type": "string", "format": "date-time" }));
        assert_eq!(fixed["properties"]["format"], json!({ "type": "string" }));
        assert_eq!(fixed["$defs"]["Inner"]["anyOf"][0], json!({ "type": "number" }));
    }

    #[test]
    fn boolean_subschemas_become_the_objects_they_mean() {
        let schema = object(json!({
            "type": "object",
            "properties": { "any": true, "none": false, "list": { "type": "array", "items": true } },
            "$defs": { "Inner": { "anyOf": [true, { "type": "null" }] } }
        }));
        let fixed = Value::Object(standard_formats(&schema));
        assert_eq!(fixed["properties"]["any"], json!({}));
        assert_eq!(fixed["properties"]["none"], json!({ "not": {} }));
        assert_eq!(fixed["properties"]["list"]["items"], json!({}));
        assert_eq!(fixed["$defs"]["Inner"]["anyOf"][0], json!({}));
    }
}
