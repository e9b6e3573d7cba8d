//! Resources and prompts over a real stdio session with rmcp's client: the templates and the
//! listing, reading a task, its log and its orchestration (the same JSON as `get_status`), the
//! error for a URI that names nothing, `resources/subscribe` and `resources/unsubscribe` in an
//! `initialize` session (also for a change another process made) and `subscriptions/listen` in a
//! 2026-07-28 one, and `plan_orchestration`.

use std::time::Duration;

use rmcp::ServiceError;
use rmcp::model::{
    ErrorCode, GetPromptRequestParams, ReadResourceRequestParams, ReadResourceResult, ResourceContents,
    ServerNotification, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use serde_json::{Value, json};

use crate::harness::{Client, Env, eventually};

/// Reads a resource; returns its one content's (mime type, text).
async fn read(client: &Client, uri: &str) -> (String, String) {
    let result: ReadResourceResult = client
        .service
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("read {uri}: {e}"));
    assert_eq!(result.contents.len(), 1, "{result:?}");
    match &result.contents[0] {
        ResourceContents::TextResourceContents { uri: got, mime_type, text, .. } => {
            assert_eq!(got, uri);
            (mime_type.clone().unwrap_or_default(), text.clone())
        }
        other => panic!("{uri}: expected text, got {other:?}"),
    }
}

/// Reads a resource that must fail; returns the JSON-RPC error code and message.
async fn read_error(client: &Client, uri: &str) -> (ErrorCode, String) {
    match client.service.read_resource(ReadResourceRequestParams::new(uri)).await {
        Err(ServiceError::McpError(e)) => (e.code, e.message.to_string()),
        other => panic!("read {uri} should fail with a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn templates_and_listed_resources() {
    let env = Env::new();
    let client = env.server().await;
    let caps = client.service.peer_info().expect("info").capabilities.clone();
    let resources = caps.resources.expect("resources capability");
    assert_eq!((resources.subscribe, resources.list_changed), (Some(true), Some(true)));
    assert!(caps.prompts.is_some(), "prompts capability");

    let templates = client.service.list_all_resource_templates().await.expect("templates");
    let mut shapes: Vec<(String, String)> =
        templates.iter().map(|t| (t.uri_template.clone(), t.mime_type.clone().unwrap_or_default())).collect();
    shapes.sort();
    assert_eq!(
        shapes,
        [
            ("claude-worker://orchestrations/{id}".to_owned(), "application/json".to_owned()),
            ("claude-worker://tasks/{id}".to_owned(), "application/json".to_owned()),
            ("claude-worker://tasks/{id}/log".to_owned(), "text/plain".to_owned()),
        ]
    );

    assert!(client.service.list_all_resources().await.expect("list").is_empty(), "nothing stored yet");
    let created = client
        .ok(
            "create_orchestration",
            json!({"name": "listed", "tasks": [
                {"identifier": "first", "execution_prompt": "one"},
                {"identifier": "second", "execution_prompt": "two", "depends_on": ["first"]},
            ]}),
        )
        .await;
    let orchestration = created["orchestration_id"].as_i64().expect("id");
    let listed = client.service.list_all_resources().await.expect("list");
    let uris: Vec<&str> = listed.iter().map(|r| r.uri.as_str()).collect();
    for task in created["tasks"].as_array().expect("tasks") {
        let uri = format!("claude-worker://tasks/{}", task["task_id"]);
        let resource = listed.iter().find(|r| r.uri == uri).unwrap_or_else(|| panic!("{uri} listed in {uris:?}"));
        assert_eq!(resource.name, task["identifier"].as_str().expect("identifier"));
        assert_eq!(resource.mime_type.as_deref(), Some("application/json"));
    }
    let uri = format!("claude-worker://orchestrations/{orchestration}");
    let resource = listed.iter().find(|r| r.uri == uri).unwrap_or_else(|| panic!("{uri} listed in {uris:?}"));
    assert_eq!(resource.name, "listed");
    assert_eq!(listed.len(), 3, "{uris:?}");
    client.wait_orchestration(orchestration, 60.0).await;
    client.stop().await;
}

#[tokio::test]
async fn reading_a_task_its_log_and_its_orchestration() {
    let env = Env::new();
    let client = env.server().await;
    let created = client.create("readable", "@tool @result=all done", json!({})).await;
    let id = created["task_id"].as_i64().expect("task id");
    let orchestration = created["orchestration_id"].as_i64().expect("orchestration id");
    client.wait_task("readable", 60.0).await;

    let (mime, text) = read(&client, &format!("claude-worker://tasks/{id}")).await;
    assert_eq!(mime, "application/json");
    let task: Value = serde_json::from_str(&text).expect("task JSON");
    assert_eq!(task, client.ok("get_status", json!({"task": format!("#{id}")})).await, "the shape of get_status");
    assert_eq!(task["result"], "all done");

    let (mime, text) = read(&client, &format!("claude-worker://orchestrations/{orchestration}")).await;
    assert_eq!(mime, "application/json");
    let read_back: Value = serde_json::from_str(&text).expect("orchestration JSON");
    assert_eq!(read_back, client.ok("get_status", json!({"orchestration_id": orchestration})).await);
    assert_eq!(read_back["tasks"][0]["task_id"], id);

    let (mime, log) = read(&client, &format!("claude-worker://tasks/{id}/log")).await;
    assert_eq!(mime, "text/plain");
    let output = client.ok("get_task_output", json!({"task": format!("#{id}"), "tail_lines": 1000})).await;
    let lines: Vec<&str> = output["summary_tail"].as_array().expect("tail").iter().filter_map(Value::as_str).collect();
    assert!(!lines.is_empty(), "the summary log has lines");
    assert_eq!(log, format!("{}\n", lines.join("\n")), "the log is the summary log");

    let missing = [
        "claude-worker://tasks/999",
        "claude-worker://tasks/999/log",
        "claude-worker://orchestrations/999",
        "claude-worker://tasks/readable",
        "claude-worker://tasks/1/summary",
        "claude-worker://nothing/1",
        "https://example.com/tasks/1",
    ];
    for uri in missing {
        let (code, message) = read_error(&client, uri).await;
        assert_eq!(code, ErrorCode::RESOURCE_NOT_FOUND, "{uri}: {message}");
        assert!(message.contains(uri), "{message}");
    }
    client.stop().await;
}

#[tokio::test]
async fn subscribed_resources_are_notified_until_unsubscribed() {
    let env = Env::new();
    let client = env.server().await;
    let peer = client.service.peer();
    // None exists yet: a subscriber hears when it appears.
    for uri in [
        "claude-worker://tasks/1",
        "claude-worker://tasks/1/log",
        "claude-worker://orchestrations/1",
        "claude-worker://tasks/2",
        "claude-worker://orchestrations/2",
    ] {
        #[allow(deprecated)]
        peer.subscribe(SubscribeRequestParams::new(uri)).await.unwrap_or_else(|e| panic!("subscribe {uri}: {e}"));
    }
    #[allow(deprecated)]
    peer.unsubscribe(UnsubscribeRequestParams::new("claude-worker://orchestrations/2")).await.expect("unsubscribe");
    #[allow(deprecated)]
    let bad = peer.subscribe(SubscribeRequestParams::new("claude-worker://tasks/x")).await;
    assert!(
        matches!(&bad, Err(ServiceError::McpError(e)) if e.code == ErrorCode::RESOURCE_NOT_FOUND),
        "a malformed URI: {bad:?}"
    );

    let created = client.create("watched", "@tool", json!({})).await;
    assert_eq!((created["task_id"].as_i64(), created["orchestration_id"].as_i64()), (Some(1), Some(1)));
    client.wait_task("watched", 60.0).await;
    eventually(10.0, "updates for the task, its log and its orchestration, and a list change", || {
        let notes = client.notes();
        let all = [
            "updated claude-worker://tasks/1",
            "updated claude-worker://tasks/1/log",
            "updated claude-worker://orchestrations/1",
            "list_changed",
        ];
        all.iter().all(|n| notes.iter().any(|got| got == n)).then_some(())
    })
    .await;

    // Task 2 starts orchestration 2, whose subscription was withdrawn. Whenever the task's state
    // moves, so do its one-task orchestration's counters, in the same pass, and that pass sends
    // its notifications in URI order: the orchestration's would come before the task's.
    let created = client.create("second", "hello", json!({})).await;
    assert_eq!((created["task_id"].as_i64(), created["orchestration_id"].as_i64()), (Some(2), Some(2)));
    client.wait_task("second", 60.0).await;
    eventually(10.0, "an update for task 2", || {
        client.notes().iter().any(|n| n == "updated claude-worker://tasks/2").then_some(())
    })
    .await;
    let notes = client.notes();
    assert!(!notes.iter().any(|n| n.contains("orchestrations/2")), "unsubscribed, yet notified: {notes:?}");
    client.stop().await;
}

/// A change made by another process (here the inspect CLI) reaches subscribers too.
#[tokio::test]
async fn another_process_change_is_notified() {
    let env = Env::new();
    let client = env.server().await;
    // Nothing runs: the first task waits an hour before it may start.
    let first = client.create("later", "hello", json!({"wait_after_dependencies": 3600})).await;
    let waiting = client.create("after", "hello", json!({"depends_on": ["later"]})).await;
    let uri = format!("claude-worker://tasks/{}", waiting["task_id"]);
    #[allow(deprecated)]
    client.service.peer().subscribe(SubscribeRequestParams::new(uri.clone())).await.expect("subscribe");
    let cancel = env.inspect(&["cancel", "after"]).await;
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    // Nothing in the server changed anything: only its database watch can tell.
    let expected = format!("updated {uri}");
    eventually(20.0, "an update for the task cancelled by the inspect CLI", || {
        client.notes().contains(&expected).then_some(())
    })
    .await;
    let (_, text) = read(&client, &uri).await;
    assert_eq!(serde_json::from_str::<Value>(&text).expect("json")["status"], "cancelled");
    client.ok("cancel", json!({"task": format!("#{}", first["task_id"])})).await;
    client.stop().await;
}

#[tokio::test]
async fn subscriptions_listen_streams_resource_updates() {
    let env = Env::new();
    let client = env.server_discover().await;
    let filter = SubscriptionFilter::builder()
        .resource_subscription("claude-worker://tasks/1")
        .resource_subscription("claude-worker://elsewhere/1")
        .resources_list_changed()
        .build();
    let mut subscription = client.service.peer().listen(filter).await.expect("subscriptions/listen");
    let acknowledged = subscription.acknowledged().clone();
    assert_eq!(acknowledged.resource_subscriptions, Some(vec!["claude-worker://tasks/1".to_owned()]), "ours only");
    assert_eq!(acknowledged.resources_list_changed, Some(true));

    client.create("listened", "@sleep=0.5", json!({})).await;
    let mut updates = 0;
    let mut list_changed = false;
    let mut status = String::new();
    while status != "completed" || !list_changed {
        let next = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .unwrap_or_else(|_| panic!("no notification in time (status {status:?}, list changed {list_changed})"))
            .expect("a valid notification")
            .expect("the subscription goes on");
        match next {
            ServerNotification::ResourceUpdatedNotification(n) => {
                assert_eq!(n.params.uri, "claude-worker://tasks/1");
                updates += 1;
                let (_, text) = read(&client, "claude-worker://tasks/1").await;
                status =
                    serde_json::from_str::<Value>(&text).expect("json")["status"].as_str().unwrap_or("").to_owned();
            }
            ServerNotification::ResourceListChangedNotification(_) => list_changed = true,
            other => panic!("unexpected notification {other:?}"),
        }
    }
    assert!(updates >= 1);

    // A 2026-07-28 session has no resources/subscribe; a URI that names nothing is invalid params there.
    #[allow(deprecated)]
    let legacy = client.service.peer().subscribe(SubscribeRequestParams::new("claude-worker://tasks/1")).await;
    assert!(matches!(&legacy, Err(ServiceError::McpError(e)) if e.code == ErrorCode::METHOD_NOT_FOUND), "{legacy:?}");
    let (code, _) = read_error(&client, "claude-worker://tasks/999").await;
    assert_eq!(code, ErrorCode::INVALID_PARAMS);
    subscription.cancel().await.expect("cancel");
    client.stop().await;
}

#[tokio::test]
async fn plan_orchestration_prompt() {
    let env = Env::new();
    let client = env.server().await;
    let prompts = client.service.list_all_prompts().await.expect("prompts/list");
    assert_eq!(prompts.len(), 1);
    let prompt = &prompts[0];
    assert_eq!(prompt.name, "plan_orchestration");
    let arguments = prompt.arguments.clone().expect("arguments");
    let args: Vec<(&str, Option<bool>)> = arguments.iter().map(|a| (a.name.as_str(), a.required)).collect();
    assert_eq!(args, [("goal", Some(true)), ("working_directory", Some(false))]);

    let dir = env.work.display().to_string();
    let params = GetPromptRequestParams::new("plan_orchestration").with_arguments(
        json!({"goal": "Add a /health endpoint with tests", "working_directory": dir})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let result = client.service.get_prompt(params).await.expect("prompts/get");
    assert_eq!(result.messages.len(), 1);
    let message = serde_json::to_value(&result.messages[0]).expect("json");
    assert_eq!(message["role"], "user");
    let text = message["content"]["text"].as_str().expect("text");
    for needle in ["Add a /health endpoint with tests", "create_orchestration", "depends_on", "self-contained", &dir] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }

    for arguments in [None, Some(json!({"working_directory": "/tmp"}))] {
        let mut params = GetPromptRequestParams::new("plan_orchestration");
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments.as_object().cloned().expect("object"));
        }
        let error = client.service.get_prompt(params).await;
        assert!(
            matches!(&error, Err(ServiceError::McpError(e)) if e.code == ErrorCode::INVALID_PARAMS && e.message.contains("goal")),
            "{error:?}"
        );
    }
    let unknown = client.service.get_prompt(GetPromptRequestParams::new("no_such_prompt")).await;
    assert!(matches!(&unknown, Err(ServiceError::McpError(e)) if e.code == ErrorCode::INVALID_PARAMS), "{unknown:?}");
    client.stop().await;
}
