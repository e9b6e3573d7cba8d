//! The OpenAPI document of `/api/v1`, made from the code: [`ENDPOINTS`] names each route with
//! the types its handler reads and answers with (the same `api::wire` shapes the MCP tools
//! use), and their JSON Schemas come from those types. A test checks that the router answers
//! every path listed here.

use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::api::{dashboard, wire};

/// A schema maker for one type, filled into a generator.
type SchemaOf = fn(&mut SchemaGenerator) -> schemars::Schema;

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// One route of the API.
pub struct Endpoint {
    pub method: &'static str,
    /// With `{id}` or `{task}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    /// The query's fields, when it takes one.
    pub query: Option<SchemaOf>,
    /// The JSON body, when it takes one (`optional`: an empty body is allowed).
    pub body: Option<(SchemaOf, bool)>,
    /// The status and body of a success.
    pub answer: (u16, SchemaOf),
}

/// A body for `POST .../cancel`.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, recorded with the cancel.
    pub reason: Option<String>,
}

/// A body for `POST /api/v1/orchestrations/{id}/retry`.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Set the orchestration's budget to this many dollars and run again only what its budget
    /// stopped (and what waited on that), instead of every failed, cancelled and skipped task.
    pub max_budget_usd: Option<f64>,
}

/// A `GET /api/v1/tasks/{task}/output` query.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// Lines of the summary log to return (default 50).
    pub tail_lines: Option<u32>,
}

/// A `GET /api/v1/tasks/{task}/log` query.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// "summary" (the default) or "detailed".
    pub log: Option<String>,
    /// The byte to start from (default 0); follow a log by asking again from the answer's `next`.
    pub from: Option<u64>,
    /// "json" (the default: a piece of at most 256 KiB, with where the next starts) or "text" (the
    /// log from `from` to its end, as text/plain).
    pub format: Option<String>,
}

/// `POST /login`: the dashboard's sign-in.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub token: String,
}

/// `GET /health`.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct Health {
    /// "ok" while the database is usable.
    pub status: &'static str,
    pub version: &'static str,
}

/// An error: what went wrong and what to do.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "get",
        path: "/health",
        summary: "Whether the server and its database answer.",
        query: None,
        body: None,
        answer: (200, of::<Health>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/orchestrations",
        summary: "Queue a whole dependency graph (the workflow.json format), checked whole before anything is stored.",
        query: None,
        body: Some((of::<wire::CreateOrchestrationArgs>, false)),
        answer: (201, of::<wire::CreateOrchestrationOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/orchestrations",
        summary: "Orchestrations, newest first, with their counters and cost.",
        query: Some(of::<wire::ListOrchestrationsArgs>),
        body: None,
        answer: (200, of::<wire::ListOrchestrationsOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/orchestrations/{id}",
        summary: "An orchestration: status, total_tasks, completed_tasks, ... and its tasks.",
        query: None,
        body: None,
        answer: (200, of::<wire::StatusOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/orchestrations/{id}/cancel",
        summary: "Cancel an orchestration: its running tasks are stopped, the rest never start.",
        query: None,
        body: Some((of::<CancelBody>, true)),
        answer: (200, of::<wire::CancelOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/orchestrations/{id}/retry",
        summary: "Run every failed, cancelled and skipped task again; with max_budget_usd, raise the budget instead.",
        query: None,
        body: Some((of::<RetryBody>, true)),
        answer: (200, of::<wire::RetryOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/orchestrations/{id}/graph",
        summary: "An orchestration's graph laid out in dependency layers: boxes, edges, states (at most 1,000 tasks drawn).",
        query: None,
        body: None,
        answer: (200, of::<dashboard::GraphOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/tasks",
        summary: "Queue one task; it starts once every depends_on task completed.",
        query: None,
        body: Some((of::<wire::CreateTaskArgs>, false)),
        answer: (201, of::<wire::CreateTaskOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks",
        summary: "Tasks, newest first.",
        query: Some(of::<wire::ListTasksArgs>),
        body: None,
        answer: (200, of::<wire::ListTasksOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks/{task}",
        summary: "A task (its id, #id or identifier): status, result, cost, errors.",
        query: None,
        body: None,
        answer: (200, of::<wire::StatusOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks/{task}/output",
        summary: "A task's result, error and the end of its summary log.",
        query: Some(of::<OutputQuery>),
        body: None,
        answer: (200, of::<wire::OutputOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks/{task}/details",
        summary: "A task's status, prompt, settings and history.",
        query: None,
        body: None,
        answer: (200, of::<dashboard::DetailsOut>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks/{task}/log",
        summary: "A piece of a task's summary or detailed log, from a byte offset (follow it by asking from `next`).",
        query: Some(of::<LogQuery>),
        body: None,
        answer: (200, of::<dashboard::LogPieceOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/tasks/{task}/cancel",
        summary: "Cancel a task: stopped if running; its dependents are skipped.",
        query: None,
        body: Some((of::<CancelBody>, true)),
        answer: (200, of::<wire::CancelOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/tasks/{task}/retry",
        summary: "Run a failed or cancelled task again, and reopen its skipped dependents.",
        query: None,
        body: None,
        answer: (200, of::<wire::RetryOut>),
    },
    Endpoint {
        method: "post",
        path: "/api/v1/resume",
        summary: "End the account's usage-limit pause now: queued tasks start (a refusal pauses them again).",
        query: None,
        body: None,
        answer: (200, of::<dashboard::ResumeOut>),
    },
];

/// The document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
    let mut reads = settings.clone().for_deserialize().into_generator();
    let mut writes = settings.for_serialize().into_generator();
    let error = writes.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let mut operation = Map::new();
        operation.insert("summary".into(), endpoint.summary.into());
        let mut parameters: Vec<Value> = endpoint
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let description = if name == "task" {
                    "the task's id, #id, or identifier (looked up in the server's project)"
                } else {
                    "the orchestration's id"
                };
                let schema = if name == "task" { json!({"type": "string"}) } else { json!({"type": "integer"}) };
                json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
            })
            .collect();
        if let Some(query) = endpoint.query {
            let schema = query(&mut reads);
            let properties = resolve(&reads, schema.as_value()).get("properties").cloned().unwrap_or_default();
            for (name, schema) in properties.as_object().into_iter().flatten() {
                parameters.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
            }
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), parameters.into());
        }
        if let Some((body, optional)) = endpoint.body {
            operation.insert(
                "requestBody".into(),
                json!({"required": !optional, "content": {"application/json": {"schema": body(&mut reads)}}}),
            );
        }
        let (status, answer) = endpoint.answer;
        let answer = answer(&mut writes);
        operation.insert(
            "responses".into(),
            json!({
                status.to_string(): {"description": "done", "content": {"application/json": {"schema": answer}}},
                "4XX": {"description": "a mistake to fix, said in `error`", "content": {"application/json": {"schema": error}}},
                "5XX": {"description": "the server could not do it", "content": {"application/json": {"schema": error}}},
            }),
        );
        let item = paths.entry(endpoint.path).or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(endpoint.method.into(), operation.into());
        }
    }
    let mut schemas = reads.take_definitions(true);
    schemas.extend(writes.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "claude-worker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Queue Claude Code tasks as a dependency graph and follow them. Off loopback every request \
                            needs `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}, {}],
    })
}

/// A schema with its `$ref` followed into the generator's definitions.
fn resolve<'a>(generator: &'a SchemaGenerator, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(|name| generator.definitions().get(name))
        .unwrap_or(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document names a schema it holds, and every route has its answer.
    #[test]
    fn the_document_is_whole() {
        let document = document();
        let schemas = document["components"]["schemas"].as_object().expect("schemas");
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 10);
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a foreign $ref {r}"));
            assert!(schemas.contains_key(name), "{r} is not in the document");
        }
        let create = &document["paths"]["/api/v1/orchestrations"]["post"];
        assert_eq!(
            create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            json!("#/components/schemas/CreateOrchestrationOut")
        );
        let list = document["paths"]["/api/v1/tasks"]["get"]["parameters"].as_array().expect("query");
        assert!(list.iter().any(|p| p["name"] == "orchestration_id" && p["in"] == "query"));
        let task = document["paths"]["/api/v1/tasks/{task}"]["get"]["parameters"].as_array().expect("path");
        assert_eq!(task[0]["in"], "path");
    }
}
